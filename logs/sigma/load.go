package sigma

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/mamori-sec/mamori/event"
	"gopkg.in/yaml.v3"
)

// Set is a loaded rule collection: the rules that compiled and the
// reasons the others did not.
type Set struct {
	Rules  []*Rule
	Errors []*LoadError
	// Strict makes the first bad rule an error of Add/LoadFS.
	Strict bool

	byRef map[string]*Rule
	index *index
	sigs  []sigInfo
}

// NewSet returns an empty set.
func NewSet(strict bool) *Set { return &Set{Strict: strict, byRef: map[string]*Rule{}} }

// LoadPaths loads every *.yml / *.yaml file under the given files and
// directories.
func (s *Set) LoadPaths(paths ...string) error {
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("loading rules: %w", err)
		}
		if !st.IsDir() {
			if err := s.loadFile(os.DirFS(filepath.Dir(p)), filepath.Base(p), p); err != nil {
				return err
			}
			continue
		}
		if err := s.LoadFS(os.DirFS(p), p); err != nil {
			return err
		}
	}
	return nil
}

// LoadFS loads every rule file in fsys; prefix names them in errors and in
// Rule.Source.
func (s *Set) LoadFS(fsys fs.FS, prefix string) error {
	var files []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".yml") || strings.HasSuffix(p, ".yaml")) {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("loading rules from %s: %w", prefix, err)
	}
	sort.Strings(files)
	for _, f := range files {
		if err := s.loadFile(fsys, f, filepath.Join(prefix, f)); err != nil {
			return err
		}
	}
	return nil
}

func (s *Set) loadFile(fsys fs.FS, name, display string) error {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return fmt.Errorf("loading rules: %w", err)
	}
	return s.Add(display, b)
}

// Add parses one YAML file (one or more documents).
func (s *Set) Add(file string, data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			le := &LoadError{File: file, Reason: "parsing YAML: " + err.Error()}
			s.Errors = append(s.Errors, le)
			if s.Strict {
				return le
			}
			// The decoder cannot resume after a syntax error.
			return nil
		}
		if len(doc.Content) == 0 {
			continue
		}
		r, err := compileRule(doc.Content[0])
		if err != nil {
			le := &LoadError{File: file, Line: doc.Content[0].Line, Reason: err.Error()}
			if r != nil {
				le.RuleID, le.Title = r.ID, r.Title
			}
			s.Errors = append(s.Errors, le)
			if s.Strict {
				return le
			}
			continue
		}
		r.Source = file
		s.Rules = append(s.Rules, r)
	}
}

type header struct {
	Title          string         `yaml:"title"`
	ID             string         `yaml:"id"`
	Name           string         `yaml:"name"`
	Description    string         `yaml:"description"`
	Author         string         `yaml:"author"`
	Status         string         `yaml:"status"`
	Level          string         `yaml:"level"`
	Tags           []string       `yaml:"tags"`
	References     []string       `yaml:"references"`
	Generate       *bool          `yaml:"generate"`
	Action         string         `yaml:"action"`
	Logsource      map[string]any `yaml:"logsource"`
	Correlation    *corrYAML      `yaml:"correlation"`
	Mamori         *mamoriYAML    `yaml:"mamori"`
	Detection      yaml.Node      `yaml:"detection"`
	Falsepositives any            `yaml:"falsepositives"`
}

type corrYAML struct {
	Type      string         `yaml:"type"`
	Rules     any            `yaml:"rules"`
	GroupBy   any            `yaml:"group-by"`
	Timespan  string         `yaml:"timespan"`
	Timeframe string         `yaml:"timeframe"`
	Condition map[string]any `yaml:"condition"`
	Generate  *bool          `yaml:"generate"`
	Aliases   map[string]any `yaml:"aliases"`
}

type mamoriYAML struct {
	Response *struct {
		Block string `yaml:"block"`
	} `yaml:"response"`
}

func compileRule(doc *yaml.Node) (*Rule, error) {
	if doc.Kind != yaml.MappingNode {
		return nil, errors.New("document is not a mapping")
	}
	var h header
	if err := doc.Decode(&h); err != nil {
		return nil, fmt.Errorf("decoding rule: %w", err)
	}
	r := &Rule{ID: h.ID, Name: h.Name, Title: h.Title, Description: h.Description, Author: h.Author,
		Status: h.Status, Tags: h.Tags, References: h.References, Line: doc.Line, Generate: true}
	if h.Action != "" {
		return r, fmt.Errorf("legacy multi-document action %q is not supported", h.Action)
	}
	if r.Title == "" {
		return r, errors.New("missing field title")
	}
	r.Level = event.SeverityMedium
	if h.Level != "" {
		lv, err := event.ParseSeverity(h.Level)
		if err != nil {
			return r, fmt.Errorf("field level: %w", err)
		}
		r.Level = lv
	}
	if h.Generate != nil {
		r.Generate = *h.Generate
		r.explicitGenerate = *h.Generate
	}
	if h.Mamori != nil && h.Mamori.Response != nil && h.Mamori.Response.Block != "" {
		d, err := parseTimespan(h.Mamori.Response.Block)
		if err != nil {
			return r, fmt.Errorf("field mamori.response.block: %w", err)
		}
		r.Response = &Response{Block: d}
	}
	for k, v := range h.Logsource {
		s, _ := v.(string)
		switch k {
		case "product":
			r.Logsource.Product = s
		case "service":
			r.Logsource.Service = s
		case "category":
			r.Logsource.Category = s
		case "definition":
			r.Logsource.Definition = s
		}
	}
	if h.Correlation != nil {
		c, err := compileCorrelation(h.Correlation)
		if err != nil {
			return r, fmt.Errorf("correlation: %w", err)
		}
		r.Correlation = c
		return r, nil
	}
	if h.Detection.Kind != yaml.MappingNode {
		return r, errors.New("missing detection")
	}
	searches := map[string]node{}
	var cond []string
	det := h.Detection.Content
	for i := 0; i+1 < len(det); i += 2 {
		k, v := det[i], det[i+1]
		switch k.Value {
		case "condition":
			switch v.Kind {
			case yaml.ScalarNode:
				cond = []string{v.Value}
			case yaml.SequenceNode:
				for _, c := range v.Content {
					cond = append(cond, c.Value)
				}
			}
			continue
		case "timeframe":
			return r, errors.New("timeframe with aggregation is not supported: use a correlation rule")
		}
		n, err := compileSearch(v)
		if err != nil {
			return r, fmt.Errorf("search %s: %w", k.Value, err)
		}
		searches[k.Value] = n
	}
	if len(cond) == 0 {
		return r, errors.New("missing detection.condition")
	}
	var ors orNode
	for _, c := range cond {
		n, err := ParseCondition(c, searches)
		if err != nil {
			return r, fmt.Errorf("condition %q: %w", c, err)
		}
		ors = append(ors, n)
	}
	if len(ors) == 1 {
		r.cond = ors[0]
	} else {
		r.cond = ors
	}
	r.active = logsourceActive(r.Logsource)
	return r, nil
}

func stringList(v any) ([]string, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case string:
		return []string{x}, nil
	case []any:
		var out []string
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("list holds %T, want strings", e)
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, fmt.Errorf("want a string or a list of strings, got %T", v)
}

func compileCorrelation(y *corrYAML) (*Correlation, error) {
	c := &Correlation{Type: y.Type}
	switch y.Type {
	case "event_count", "value_count", "temporal", "temporal_ordered":
	case "":
		return nil, errors.New("missing type")
	default:
		return nil, fmt.Errorf("unknown type %q", y.Type)
	}
	var err error
	if c.RuleRefs, err = stringList(y.Rules); err != nil || len(c.RuleRefs) == 0 {
		return nil, fmt.Errorf("field rules: missing or %v", err)
	}
	if c.GroupBy, err = stringList(y.GroupBy); err != nil {
		return nil, fmt.Errorf("field group-by: %w", err)
	}
	for _, g := range c.GroupBy {
		c.groupBy = append(c.groupBy, newFieldRef(g))
	}
	ts := y.Timespan
	if ts == "" {
		ts = y.Timeframe
	}
	if c.Timespan, err = parseTimespan(ts); err != nil {
		return nil, fmt.Errorf("field timespan: %w", err)
	}
	if y.Generate != nil {
		c.Generate = *y.Generate
	}
	if len(y.Aliases) > 0 {
		return nil, errors.New("field aliases is not supported")
	}
	switch y.Type {
	case "event_count", "value_count":
		if len(y.Condition) == 0 {
			return nil, errors.New("missing condition")
		}
		for k, v := range y.Condition {
			switch k {
			case "field":
				s, _ := v.(string)
				c.Field = s
				c.field = newFieldRef(s)
			case "gt", "gte":
				n, ok := v.(int)
				if !ok {
					return nil, fmt.Errorf("condition %s needs an integer", k)
				}
				c.Op, c.Threshold = k, n
			case "lt", "lte", "eq":
				return nil, fmt.Errorf("condition %s needs window-end evaluation, which is not supported (gt and gte are)", k)
			default:
				return nil, fmt.Errorf("unknown condition key %q", k)
			}
		}
		if c.Op == "" {
			return nil, errors.New("condition needs gt or gte")
		}
		if y.Type == "value_count" && c.Field == "" {
			return nil, errors.New("value_count condition needs field")
		}
	}
	return c, nil
}

// Override changes a correlation rule's threshold and/or timespan (policy
// knobs for the built-in pack). Zero values keep the rule's own.
func (s *Set) Override(ref string, threshold int, timespan time.Duration) error {
	r := s.byRef[ref]
	if r == nil {
		return fmt.Errorf("overriding rule %q: no such rule", ref)
	}
	if r.Correlation == nil {
		return fmt.Errorf("overriding rule %q: not a correlation rule", ref)
	}
	if threshold > 0 {
		r.Correlation.Threshold = threshold
	}
	if timespan > 0 {
		r.Correlation.Timespan = timespan
	}
	return nil
}
