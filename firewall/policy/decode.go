package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

// DecodeJSON decodes the manager's JSON form strictly: unknown fields and
// trailing data are errors.
func DecodeJSON(b []byte) (*Policy, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var p Policy
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("decoding policy JSON: %w", err)
	}
	if dec.More() {
		return nil, errors.New("decoding policy JSON: trailing data after the policy")
	}
	return &p, nil
}

// DecodeYAML decodes the YAML form strictly into the same structs.
func DecodeYAML(b []byte) (*Policy, error) {
	if p, ok := decodeYAMLSplit(b); ok {
		p.yamlSrc = b
		return p, nil
	}
	return decodeYAMLWhole(b)
}

// decodeYAMLWhole is DecodeYAML without the parallel split.
func decodeYAMLWhole(b []byte) (*Policy, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var p Policy
	if err := dec.Decode(&p); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("decoding policy YAML: empty document")
		}
		return nil, fmt.Errorf("decoding policy YAML: %w", err)
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("decoding policy YAML: more than one document")
	}
	p.yamlSrc = b
	return &p, nil
}

// ruleLines returns the line of each item of the top-level rules list.
func ruleLines(src []byte) []int {
	var doc yaml.Node
	if yaml.Unmarshal(src, &doc) != nil || len(doc.Content) == 0 {
		return nil
	}
	m := doc.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "rules" {
			var lines []int
			for _, it := range m.Content[i+1].Content {
				lines = append(lines, it.Line)
			}
			return lines
		}
	}
	return nil
}

// Load reads a policy file; ".json" files are JSON, anything else YAML.
// Errors name the file.
func Load(path string) (*Policy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading policy: %w", err)
	}
	var p *Policy
	if strings.EqualFold(filepath.Ext(path), ".json") {
		p, err = DecodeJSON(b)
	} else {
		p, err = DecodeYAML(b)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}
