package manager

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"

	"github.com/mamori-sec/mamori/api"
	"github.com/mamori-sec/mamori/internal/strictjson"
	"github.com/mamori-sec/mamori/manager/store"
)

// apiError is an error with an HTTP status and a message safe to show.
type apiError struct {
	status int
	field  string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func errf(status int, field, format string, args ...any) *apiError {
	return &apiError{status: status, field: field, msg: fmt.Sprintf(format, args...)}
}

// maxPublicBody bounds public API bodies other than rule-pack uploads.
const maxPublicBody = 1 << 20

// decode reads exactly one JSON value into v, refusing bodies over limit,
// unknown or misspelt fields, wrong types and values their type refuses.
// Errors name the field by its full path (rules[2].severity,
// modules.integrity.enabled): internal/strictjson walks the raw value
// against v's type, so no error text is parsed. The typed decode runs
// first because agents' event batches come through here: on success only
// strictjson's cheap key walk remains (for keys in another case, which
// encoding/json takes), and only a failure pays for the full check that
// names the field.
func decode(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return decodeError(err)
	}
	return decodeStrict(body, v)
}

// decodeStrict is decode for a body already in memory (ingest reads its
// own, possibly gzip'd): unknown fields refused and named by their path,
// exactly one JSON value.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(fieldProblem(body, v, err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errf(http.StatusBadRequest, "", "body must hold exactly one JSON value")
	}
	if err := strictjson.CheckFieldsParsed(body, reflect.TypeOf(v)); err != nil {
		return decodeError(err)
	}
	return nil
}

// fieldProblem turns a failed decode into strictjson's account of the
// first value's first problem, named by its path; err stands when the
// value is not JSON (a syntax error) or strictjson finds nothing.
func fieldProblem(body []byte, v any, err error) error {
	var raw json.RawMessage
	if json.NewDecoder(bytes.NewReader(body)).Decode(&raw) == nil {
		if cerr := strictjson.Check(raw, reflect.TypeOf(v)); cerr != nil {
			return cerr
		}
	}
	return err
}

func decodeError(err error) error {
	var mbe *http.MaxBytesError
	var unknown *strictjson.UnknownFieldError
	var typ *strictjson.TypeError
	var val *strictjson.ValueError
	var jtyp *json.UnmarshalTypeError
	var syn *json.SyntaxError
	switch {
	case errors.As(err, &mbe):
		return errf(http.StatusRequestEntityTooLarge, "", "body larger than %d bytes", mbe.Limit)
	case errors.As(err, &unknown):
		return errf(http.StatusBadRequest, unknown.Field, "unknown field %q", unknown.Field)
	case errors.As(err, &typ):
		return errf(http.StatusBadRequest, typ.Field, "%v", typ)
	case errors.As(err, &val):
		return errf(http.StatusBadRequest, val.Field, "%v", val)
	case errors.As(err, &jtyp):
		// strictjson names type errors; this stays as a safety net (its
		// path lacks indices and map keys).
		return errf(http.StatusBadRequest, jtyp.Field, "field %s: got JSON %s, want %s", jtyp.Field, jtyp.Value, jtyp.Type)
	case errors.As(err, &syn):
		return errf(http.StatusBadRequest, "", "malformed JSON at byte %d", syn.Offset)
	case errors.Is(err, io.EOF):
		return errf(http.StatusBadRequest, "", "empty body, want a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errf(http.StatusBadRequest, "", "truncated JSON body")
	}
	return errf(http.StatusBadRequest, "", "invalid JSON body: %v", err)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, log *slog.Logger, r *http.Request, err error) {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
	case errors.Is(err, store.ErrNotFound):
		ae = errf(http.StatusNotFound, "", "not found")
	case errors.Is(err, store.ErrConflict):
		ae = errf(http.StatusConflict, "", "%v", err)
	case errors.Is(err, store.ErrInUse), errors.Is(err, store.ErrCycle):
		ae = errf(http.StatusConflict, "", "%v", err)
	case errors.Is(err, store.ErrBadCursor):
		ae = errf(http.StatusBadRequest, "cursor", "invalid cursor")
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away (a long-poll dropped, a timeout): nothing
		// to log and nobody to answer.
		return
	default:
		log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		ae = errf(http.StatusInternalServerError, "", "internal error")
	}
	writeJSON(w, ae.status, api.ErrorBody{Error: api.Error{Status: ae.status, Message: ae.msg, Field: ae.field}})
}
