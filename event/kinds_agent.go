package event

// Kinds the agent runtime emits about itself, beside the agent.* kinds in
// event.go.
const (
	// KindAgentIdentity: the manager saw this agent's certificate on another
	// machine (cloned disk image); the agent re-enrolled or needs to.
	KindAgentIdentity Kind = "agent.identity"
	// KindAgentPolicy: a policy could not be applied (a module refused its
	// settings); the previous configuration stays active.
	KindAgentPolicy Kind = "agent.policy"
)
