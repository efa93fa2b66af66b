package modules

import "github.com/mamori-sec/mamori/agent"

// newLogInspect is replaced by the real adapter when the engine lands.
func newLogInspect(env agent.Env) agent.Module { return newPlaceholder("loginspect") }
