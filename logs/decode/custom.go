package decode

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// CustomSpec is one user-defined decoder, written in YAML:
//
//	decoders:
//	  - name: myapp
//	    program: myapp            # only syslog messages of this program (else whole lines)
//	    format: regex             # regex | kv | json
//	    regex: 'login failed for (?P<user__name>\S+) from (?P<source__ip>\S+)'
//	    service: myapp            # Sigma logsource service of the records
//	    set: {event.action: myapp_login_failed}
//
// Regex group names use "__" for "." (Go group names cannot hold dots), or
// are renamed through fields.
type CustomSpec struct {
	Name     string            `yaml:"name"`
	Program  string            `yaml:"program"`
	Format   string            `yaml:"format"`
	Regex    string            `yaml:"regex"`
	Fields   map[string]string `yaml:"fields"`
	Set      map[string]string `yaml:"set"`
	Service  string            `yaml:"service"`
	Product  string            `yaml:"product"`
	Category string            `yaml:"category"`
	// Contains, when set, must occur in the text for the decoder to apply
	// (a cheap pre-filter; required for kv decoders without program).
	Contains string `yaml:"contains"`
	// Separator splits kv pairs (default " ").
	Separator string `yaml:"separator"`
}

// Custom is a compiled CustomSpec.
type Custom struct {
	spec CustomSpec
	re   *regexp.Regexp
	keys []string
}

type customFile struct {
	Decoders []CustomSpec `yaml:"decoders"`
}

// LoadCustom reads user-defined decoders from a YAML file. Unknown keys are
// errors, so a typo does not silently disable a decoder.
func LoadCustom(path string) ([]*Custom, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("loading decoders: %w", err)
	}
	var f customFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("loading decoders %s: %w", path, err)
	}
	var out []*Custom
	for i, s := range f.Decoders {
		c, err := CompileCustom(s)
		if err != nil {
			return nil, fmt.Errorf("loading decoders %s: decoder %d (%s): %w", path, i+1, s.Name, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// CompileCustom validates and compiles one decoder.
func CompileCustom(s CustomSpec) (*Custom, error) {
	if s.Name == "" {
		return nil, errors.New("missing field name")
	}
	c := &Custom{spec: s}
	switch s.Format {
	case "", "regex":
		if s.Regex == "" {
			return nil, errors.New("format regex needs field regex")
		}
		re, err := regexp.Compile(s.Regex)
		if err != nil {
			return nil, fmt.Errorf("compiling regex: %w", err)
		}
		c.re = re
		for _, n := range re.SubexpNames() {
			k := n
			if to, ok := s.Fields[n]; ok {
				k = to
			} else {
				k = strings.ReplaceAll(n, "__", ".")
			}
			c.keys = append(c.keys, k)
		}
	case "kv", "json":
		if s.Regex != "" {
			return nil, fmt.Errorf("format %s takes no regex", s.Format)
		}
		if s.Format == "kv" && s.Program == "" && s.Contains == "" {
			return nil, errors.New("a kv decoder needs program or contains, or it would take every line")
		}
	default:
		return nil, fmt.Errorf("unknown format %q (want regex, kv or json)", s.Format)
	}
	if c.spec.Separator == "" {
		c.spec.Separator = " "
	}
	return c, nil
}

// Name returns the decoder's name.
func (c *Custom) Name() string { return c.spec.Name }

// decode applies c to text (a whole line, or a program's message) and
// reports whether it matched.
func (c *Custom) decode(text string, r *Record) bool {
	if c.spec.Contains != "" && !strings.Contains(text, c.spec.Contains) {
		return false
	}
	switch c.spec.Format {
	case "", "regex":
		m := c.re.FindStringSubmatchIndex(text)
		if m == nil {
			return false
		}
		for i := 1; i < len(c.keys); i++ {
			if c.keys[i] == "" || m[2*i] < 0 {
				continue
			}
			c.setField(r, c.keys[i], text[m[2*i]:m[2*i+1]])
		}
	case "kv":
		n := 0
		for _, p := range strings.Split(text, c.spec.Separator) {
			k, v, ok := strings.Cut(p, "=")
			if !ok || k == "" {
				continue
			}
			v = strings.Trim(v, "\"")
			if to, ok := c.spec.Fields[k]; ok {
				k = to
			}
			c.setField(r, k, v)
			n++
		}
		if n == 0 {
			return false
		}
	case "json":
		t := trimSpace(text)
		if !strings.HasPrefix(t, "{") {
			return false
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(t), &m); err != nil {
			return false
		}
		flattenJSON("", m, func(k, v string) {
			if to, ok := c.spec.Fields[k]; ok {
				k = to
			}
			c.setField(r, k, v)
		})
	}
	for k, v := range c.spec.Set {
		c.setField(r, k, v)
	}
	if r.Format == "" {
		r.Format = c.spec.Name
	}
	if c.spec.Service != "" {
		r.Service = c.spec.Service
	}
	if c.spec.Product != "" {
		r.Product = c.spec.Product
	}
	if c.spec.Category != "" {
		r.Category = c.spec.Category
	}
	if _, ok := r.Get(Message); !ok {
		r.Set(Message, text)
	}
	r.Decoded = true
	return true
}

func (c *Custom) setField(r *Record, k, v string) {
	if k == "source.ip" || k == "source.address" {
		setHost(r, v)
		return
	}
	r.SetExtra(k, v)
}

func flattenJSON(prefix string, m map[string]any, set func(k, v string)) {
	for k, v := range m {
		key := k
		if prefix != "" {
			key = prefix + "." + k
		}
		switch x := v.(type) {
		case map[string]any:
			flattenJSON(key, x, set)
		case string:
			set(key, x)
		case nil:
		default:
			b, _ := json.Marshal(x)
			set(key, string(b))
		}
	}
}
