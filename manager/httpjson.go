package manager

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/mamori-sec/mamori/api"
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

// decode reads exactly one JSON value into v, refusing unknown fields,
// wrong types and bodies over limit. Errors name the field.
func decode(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return decodeError(err)
		}
		return errf(http.StatusBadRequest, "", "body must hold exactly one JSON value")
	}
	return nil
}

func decodeError(err error) error {
	var mbe *http.MaxBytesError
	var typ *json.UnmarshalTypeError
	var syn *json.SyntaxError
	switch {
	case errors.As(err, &mbe):
		return errf(http.StatusRequestEntityTooLarge, "", "body larger than %d bytes", mbe.Limit)
	case errors.As(err, &typ):
		return errf(http.StatusBadRequest, typ.Field, "field %s: got JSON %s, want %s", typ.Field, typ.Value, typ.Type)
	case errors.As(err, &syn):
		return errf(http.StatusBadRequest, "", "malformed JSON at byte %d", syn.Offset)
	case errors.Is(err, io.EOF):
		return errf(http.StatusBadRequest, "", "empty body, want a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errf(http.StatusBadRequest, "", "truncated JSON body")
	}
	// encoding/json has no error type for unknown fields; this prefix is
	// its documented wording and the only way to name the field.
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		f = strings.Trim(f, `"`)
		return errf(http.StatusBadRequest, f, "unknown field %q", f)
	}
	// Field-level errors from UnmarshalText (e.g. an unknown severity name).
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
