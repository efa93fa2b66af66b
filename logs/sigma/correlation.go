package sigma

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Correlation is a compiled Sigma correlation rule.
type Correlation struct {
	Type     string // event_count, value_count, temporal, temporal_ordered
	RuleRefs []string
	GroupBy  []string
	Timespan time.Duration
	// Condition: the count (events, or distinct values of Field) must
	// satisfy Op Threshold. Only gt and gte are evaluated as events arrive,
	// which is what every threshold detection needs.
	Op        string
	Threshold int
	Field     string
	Generate  bool

	rules   []*Rule
	groupBy []fieldRef
	field   fieldRef
	// sig and slot place the correlation's state: correlations with the
	// same group-by share one table (one lookup per event), each with its
	// own slot in the group's entry.
	sig, slot int
}

// parseTimespan reads Sigma durations: 30s, 10m, 1h, 2d, 1w.
func parseTimespan(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if len(s) < 2 {
		return 0, fmt.Errorf("bad timespan %q", s)
	}
	n, err := strconv.Atoi(s[:len(s)-1])
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad timespan %q", s)
	}
	unit := map[byte]time.Duration{'s': time.Second, 'm': time.Minute, 'h': time.Hour, 'd': 24 * time.Hour, 'w': 7 * 24 * time.Hour}[s[len(s)-1]]
	if unit == 0 {
		return 0, fmt.Errorf("bad timespan unit in %q (want s, m, h, d or w)", s)
	}
	return time.Duration(n) * unit, nil
}
