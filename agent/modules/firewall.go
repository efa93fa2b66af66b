package modules

import "github.com/mamori-sec/mamori/agent"

// newFirewall is replaced by the real adapter when the engine lands.
func newFirewall(env agent.Env) agent.Module { return newPlaceholder("firewall") }
