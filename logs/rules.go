package logs

import (
	"fmt"

	"github.com/mamori-sec/mamori/logs/sigma"
	builtin "github.com/mamori-sec/mamori/rules/sigma"
)

// LoadRules loads the built-in pack (unless noBuiltin) and the given rule
// files and directories into one finished Set. Bad rules are recorded in
// Set.Errors and skipped, or fail the load when strict.
func LoadRules(paths []string, noBuiltin, strict bool) (*sigma.Set, error) {
	s := sigma.NewSet(strict)
	if !noBuiltin {
		if err := s.LoadFS(builtin.FS, "builtin"); err != nil {
			return nil, fmt.Errorf("loading built-in rules: %w", err)
		}
	}
	if err := s.LoadPaths(paths...); err != nil {
		return nil, err
	}
	if err := s.Finish(); err != nil {
		return nil, fmt.Errorf("loading rules: %w", err)
	}
	return s, nil
}
