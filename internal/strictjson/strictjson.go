// Package strictjson refuses JSON object keys that a struct does not declare
// with exactly that spelling, and names every problem by its full path
// (`rules[2].severity`, `modules.integrity.enabled`). encoding/json matches
// keys case-insensitively ("Kinds" fills "kinds"), its unknown-field error
// carries no path and cannot be told from other errors without reading its
// text, and its type errors leave out array indices and map keys; so
// decoders run this check on the raw value first and decode after.
package strictjson

import (
	"encoding"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
)

// UnknownFieldError names, as a path, a key no struct field declares.
type UnknownFieldError struct {
	Field string
}

func (e *UnknownFieldError) Error() string { return fmt.Sprintf("unknown field %q", e.Field) }

// TypeError names a value whose JSON type cannot fill its Go field. Value
// uses encoding/json's words: "string", "number", "number 1.5", "bool",
// "array", "object".
type TypeError struct {
	Field string
	Value string
	Type  reflect.Type
}

func (e *TypeError) Error() string {
	return fmt.Sprintf("field %s: got JSON %s, want %s", e.Field, e.Value, e.Type)
}

// ValueError names a value that its type's own UnmarshalJSON or
// UnmarshalText refused (an unknown severity name, a malformed time).
type ValueError struct {
	Field string
	Err   error
}

func (e *ValueError) Error() string { return fmt.Sprintf("field %s: %v", e.Field, e.Err) }
func (e *ValueError) Unwrap() error { return e.Err }

// CheckFields walks raw against t and returns an *UnknownFieldError for the
// first unknown key, in document order, through nested
// structs, slices, arrays and maps. Values of the wrong type, and types
// with their own UnmarshalJSON or UnmarshalText, are left to the typed
// decode.
func CheckFields(raw []byte, t reflect.Type) error {
	if !json.Valid(raw) {
		return nil
	}
	return (&walker{data: raw}).value(t)
}

// CheckFieldsParsed is CheckFields for raw that encoding/json has just
// decoded whole (one value, nothing after it): it skips the validity pass,
// which is most of CheckFields' cost. On a hot path that decodes first, it
// finds what the decode let through, keys spelt in another case.
func CheckFieldsParsed(raw []byte, t reflect.Type) (err error) {
	defer func() {
		// raw was not JSON after all (malformed, or it ended early):
		// nothing to say about its fields. Any other panic is a bug.
		switch r := recover().(type) {
		case nil:
		case malformed, runtime.Error:
			err = nil
		default:
			panic(r)
		}
	}()
	return (&walker{data: raw}).value(t)
}

// Check is CheckFields that also checks each value against its field's
// type and runs the type's own unmarshaler, so the first problem of any
// kind comes back as an *UnknownFieldError, *TypeError or *ValueError with
// its full path. A raw value that is not JSON at all is not reported: the
// typed decode says where the syntax breaks.
func Check(raw []byte, t reflect.Type) error {
	if !json.Valid(raw) {
		return nil
	}
	return (&walker{data: raw, types: true}).value(t)
}

// walker scans a valid JSON value once, in document order, against a Go
// type. It allocates little and only to report an error: the path is a
// stack of steps turned into a string on failure, keys are looked up
// without copying, and each unmarshaler type gets one scratch value per
// walk. (A walk over json.RawMessage maps cost four times the typed decode
// on an agent's event batch.)
type walker struct {
	data    []byte
	pos     int
	types   bool   // check value types and run unmarshalers, not just keys
	stack   []step // where the walk is
	scratch map[reflect.Type]any
}

// malformed is panicked with when CheckFieldsParsed meets input that is not
// JSON after all; Check and CheckFields validate first and never see it.
type malformed struct{}

// next moves past the separator after a member or element: a comma, or the
// closing bracket, which the loop reads. Anything else is not JSON, and
// the walk would otherwise stand still on it.
func (w *walker) next(closer byte) {
	w.ws()
	switch {
	case w.data[w.pos] == ',':
		w.pos++
	case w.data[w.pos] != closer:
		panic(malformed{})
	}
}

// step is one step from the root: a key (of a struct or map) or an index.
type step struct {
	key   []byte
	index int // -1 for a key
}

func (w *walker) push(key []byte, index int) { w.stack = append(w.stack, step{key, index}) }
func (w *walker) pop()                       { w.stack = w.stack[:len(w.stack)-1] }

// path renders the stack: rules[2].severity.
func (w *walker) path() string {
	var b strings.Builder
	for _, st := range w.stack {
		if st.index >= 0 {
			b.WriteString("[" + strconv.Itoa(st.index) + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.Write(st.key)
	}
	return b.String()
}

// newOf returns a *t to unmarshal into, reused within the walk.
func (w *walker) newOf(t reflect.Type) any {
	if v, ok := w.scratch[t]; ok {
		return v
	}
	if w.scratch == nil {
		w.scratch = map[reflect.Type]any{}
	}
	v := reflect.New(t).Interface()
	w.scratch[t] = v
	return v
}

var (
	unmarshalerType     = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// kindOf names a JSON value by its first byte, the way encoding/json's
// type errors do.
func kindOf(c byte) string {
	switch c {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "bool"
	default:
		return "number"
	}
}

func (w *walker) ws() {
	for w.pos < len(w.data) {
		switch w.data[w.pos] {
		case ' ', '\t', '\n', '\r':
			w.pos++
		default:
			return
		}
	}
}

// skip passes over one value.
func (w *walker) skip() {
	w.ws()
	switch w.data[w.pos] {
	case '"':
		w.skipString()
	case '{', '[':
		depth := 0
		for {
			switch w.data[w.pos] {
			case '"':
				w.skipString()
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
			w.pos++
			if depth == 0 {
				return
			}
		}
	default:
		start := w.pos
		for w.pos < len(w.data) {
			switch w.data[w.pos] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				if w.pos == start {
					panic(malformed{}) // a value must be something
				}
				return
			}
			w.pos++
		}
	}
}

// skipString passes over a string and reports whether it held escapes.
func (w *walker) skipString() (escaped bool) {
	w.pos++ // opening quote
	for {
		switch w.data[w.pos] {
		case '\\':
			escaped = true
			w.pos += 2
		case '"':
			w.pos++
			return escaped
		default:
			w.pos++
		}
	}
}

// str reads a string value: its bytes, unescaped (a copy only when it
// holds escapes).
func (w *walker) str() []byte {
	start := w.pos
	if !w.skipString() {
		return w.data[start+1 : w.pos-1]
	}
	var s string
	_ = json.Unmarshal(w.data[start:w.pos], &s) // valid JSON: cannot fail
	return []byte(s)
}

func (w *walker) value(t reflect.Type) error {
	w.ws()
	c := w.data[w.pos]
	if c == 'n' { // null leaves any field as it is
		w.pos += 4
		return nil
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	ti := infoOf(t)
	if ti.unmarshaler {
		start := w.pos
		w.skip()
		if w.types {
			if err := w.newOf(t).(json.Unmarshaler).UnmarshalJSON(w.data[start:w.pos]); err != nil {
				return &ValueError{Field: w.path(), Err: err}
			}
		}
		return nil
	}
	if ti.textUnmarshaler {
		if c != '"' {
			w.skip()
			return w.mismatch(c, t)
		}
		s := w.str()
		if w.types {
			if err := w.newOf(t).(encoding.TextUnmarshaler).UnmarshalText(s); err != nil {
				return &ValueError{Field: w.path(), Err: err}
			}
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		if c != '{' {
			w.skip()
			return w.mismatch(c, t)
		}
		fields := ti.fields
		w.pos++ // {
		for {
			w.ws()
			if w.data[w.pos] == '}' {
				w.pos++
				return nil
			}
			if w.data[w.pos] != '"' {
				panic(malformed{})
			}
			key := w.str()
			w.ws()
			if w.data[w.pos] != ':' {
				panic(malformed{})
			}
			w.pos++
			w.push(key, -1)
			var err error
			switch {
			case fields == nil:
				err = w.value(t.Elem())
			default:
				f, ok := fields[string(key)]
				switch {
				case !ok:
					err = &UnknownFieldError{Field: w.path()}
				case f.quoted:
					err = w.quoted(f.typ)
				default:
					err = w.value(f.typ)
				}
			}
			if err != nil {
				return err
			}
			w.pop()
			w.next('}')
		}
	case reflect.Slice, reflect.Array:
		if ti.base64 {
			if c != '"' { // []byte: base64 text
				w.skip()
				return w.mismatch(c, t)
			}
			b := w.str()
			if w.types {
				if _, err := base64.StdEncoding.DecodeString(string(b)); err != nil {
					return &ValueError{Field: w.path(), Err: err}
				}
			}
			return nil
		}
		if c != '[' {
			w.skip()
			return w.mismatch(c, t)
		}
		w.pos++
		for i := 0; ; i++ {
			w.ws()
			if w.data[w.pos] == ']' {
				w.pos++
				return nil
			}
			w.push(nil, i)
			if err := w.value(t.Elem()); err != nil {
				return err
			}
			w.pop()
			w.next(']')
		}
	case reflect.Interface:
		w.skip() // any JSON fills an empty interface
		return nil
	default:
		start := w.pos
		w.skip()
		return w.scalar(w.data[start:w.pos], t)
	}
}

// quoted checks a `json:",string"` field (a number or bool written inside
// a string) by decoding it alone, as encoding/json would: rare enough that
// the cost does not matter, subtle enough not to rewrite.
func (w *walker) quoted(t reflect.Type) error {
	start := w.pos
	w.skip()
	if !w.types {
		return nil
	}
	one := reflect.New(reflect.StructOf([]reflect.StructField{{Name: "V", Type: t, Tag: `json:"v,string"`}}))
	doc := append(append([]byte(`{"v":`), w.data[start:w.pos]...), '}')
	if err := json.Unmarshal(doc, one.Interface()); err != nil {
		return &ValueError{Field: w.path(), Err: errors.New(strings.Replace(err.Error(), "Go struct field .v", "field", 1))}
	}
	return nil
}

// mismatch reports a value of the wrong JSON type, when types are checked.
func (w *walker) mismatch(c byte, t reflect.Type) error {
	if !w.types {
		return nil
	}
	return &TypeError{Field: w.path(), Value: kindOf(c), Type: t}
}

// scalar checks a string, bool or number against its field's kind.
func (w *walker) scalar(raw []byte, t reflect.Type) error {
	if !w.types {
		return nil
	}
	got := kindOf(raw[0])
	ok := false
	switch k := t.Kind(); {
	case k == reflect.String:
		ok = got == "string"
	case k == reflect.Bool:
		ok = got == "bool"
	case got != "number":
	case k >= reflect.Int && k <= reflect.Int64:
		ok = intFits(raw, t.Bits(), true)
	case k >= reflect.Uint && k <= reflect.Uintptr:
		ok = intFits(raw, t.Bits(), false)
	case k == reflect.Float32 || k == reflect.Float64:
		_, err := strconv.ParseFloat(string(raw), t.Bits())
		ok = err == nil
	default:
		ok = true // channels, funcs: encoding/json refuses the type itself
	}
	if ok {
		return nil
	}
	if got == "number" && t.Kind() != reflect.String && t.Kind() != reflect.Bool {
		got = "number " + string(raw) // a fraction or out of range, as encoding/json words it
	}
	return &TypeError{Field: w.path(), Value: got, Type: t}
}

// typeInfo is what the walk needs to know of a type, computed once:
// reflect's Implements is too slow to ask for every value.
type typeInfo struct {
	unmarshaler, textUnmarshaler bool
	base64                       bool             // []byte, written as base64 text
	fields                       map[string]field // of a struct
}

var infoCache sync.Map // reflect.Type → *typeInfo

func infoOf(t reflect.Type) *typeInfo {
	if ti, ok := infoCache.Load(t); ok {
		return ti.(*typeInfo)
	}
	pt := reflect.PointerTo(t)
	ti := &typeInfo{unmarshaler: pt.Implements(unmarshalerType), textUnmarshaler: pt.Implements(textUnmarshalerType)}
	if t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8 {
		ept := reflect.PointerTo(t.Elem())
		ti.base64 = !ept.Implements(unmarshalerType) && !ept.Implements(textUnmarshalerType)
	}
	if t.Kind() == reflect.Struct {
		ti.fields = fieldsOf(t)
	}
	infoCache.Store(t, ti)
	return ti
}

// intFits reports whether the JSON number raw is an integer that fits in
// bits, signed or not — what strconv.ParseInt/ParseUint would accept,
// without their allocation for every number of an event batch.
func intFits(raw []byte, bits int, signed bool) bool {
	neg := len(raw) > 0 && raw[0] == '-'
	digits := raw
	if neg {
		if !signed {
			return false
		}
		digits = raw[1:]
	}
	if len(digits) == 0 {
		return false
	}
	var v uint64
	for _, c := range digits {
		if c < '0' || c > '9' {
			return false // fraction or exponent
		}
		d := uint64(c - '0')
		if v > (math.MaxUint64-d)/10 {
			return false
		}
		v = v*10 + d
	}
	switch {
	case !signed:
		return bits == 64 || v < 1<<uint(bits)
	case neg:
		return v <= 1<<uint(bits-1)
	default:
		return v < 1<<uint(bits-1)
	}
}

type field struct {
	typ    reflect.Type
	quoted bool // the ",string" option
}

var fieldCache sync.Map // reflect.Type → map[string]field

// fieldsOf returns the JSON names a struct decodes, as encoding/json sees
// them: tagged or Go names of exported fields, fields of embedded structs
// promoted unless a shallower field has the name, and names that two
// fields at the same depth claim dropped (encoding/json ignores both).
func fieldsOf(t reflect.Type) map[string]field {
	if f, ok := fieldCache.Load(t); ok {
		return f.(map[string]field)
	}
	out := map[string]field{}
	current := []reflect.Type{t}
	seen := map[reflect.Type]bool{}
	for len(current) > 0 {
		found := map[string][]field{}
		tagged := map[string][]bool{}
		var next []reflect.Type
		for _, st := range current {
			if seen[st] {
				continue
			}
			seen[st] = true
			for i := 0; i < st.NumField(); i++ {
				sf := st.Field(i)
				tag := sf.Tag.Get("json")
				if tag == "-" {
					continue
				}
				name, opts, _ := strings.Cut(tag, ",")
				ft := sf.Type
				if sf.Anonymous && name == "" {
					et := ft
					if et.Kind() == reflect.Pointer {
						et = et.Elem()
					}
					if et.Kind() == reflect.Struct {
						next = append(next, et)
						continue
					}
				}
				if !sf.IsExported() {
					continue
				}
				if name == "" {
					name = sf.Name
				}
				quoted := false
				for _, o := range strings.Split(opts, ",") {
					quoted = quoted || o == "string"
				}
				found[name] = append(found[name], field{typ: ft, quoted: quoted})
				tagged[name] = append(tagged[name], sf.Tag.Get("json") != "" && !strings.HasPrefix(tag, ","))
			}
		}
		for name, fs := range found {
			if _, shallower := out[name]; shallower {
				continue
			}
			if len(fs) == 1 {
				out[name] = fs[0]
				continue
			}
			// Several at one depth: a single tagged one wins, else none.
			n, pick := 0, field{}
			for i, tg := range tagged[name] {
				if tg {
					n, pick = n+1, fs[i]
				}
			}
			if n == 1 {
				out[name] = pick
			} else {
				out[name] = field{} // claimed, ambiguous: refused below
			}
		}
		current = next
	}
	for name, f := range out {
		if f.typ == nil {
			delete(out, name)
		}
	}
	fieldCache.Store(t, out)
	return out
}
