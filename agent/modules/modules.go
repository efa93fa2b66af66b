// Package modules lists the agent's modules: one file per module, each a thin
// adapter that turns its policy section into an engine config and runs the
// engine. Adding a module is one line in All.
package modules

import "github.com/mamori-sec/mamori/agent"

// Factory builds a module for an environment.
type Factory func(env agent.Env) agent.Module

// All returns the factory of every module, by name.
func All() map[string]Factory {
	return map[string]Factory{
		"antimalware": newAntimalware,
		"integrity":   newIntegrity,
		"loginspect":  newLogInspect,
		"firewall":    newFirewall,
	}
}
