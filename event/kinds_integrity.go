package event

// Kinds the integrity engine adds besides KindIntegrityChange and
// KindIntegrityError.
const (
	// KindIntegrityBaselineUpdate records that someone accepted changes
	// into a baseline: who, which paths, what was accepted.
	KindIntegrityBaselineUpdate Kind = "integrity.baseline_update"
	// KindIntegrityBaselineInit records that a baseline was (re)built.
	KindIntegrityBaselineInit Kind = "integrity.baseline_init"
)
