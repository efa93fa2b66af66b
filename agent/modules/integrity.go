package modules

import "github.com/mamori-sec/mamori/agent"

// newIntegrity is replaced by the real adapter when the engine lands.
func newIntegrity(env agent.Env) agent.Module { return newPlaceholder("integrity") }
