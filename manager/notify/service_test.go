package notify

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
)

func TestServiceBuildsOnceAndRebuildsOnChange(t *testing.T) {
	srv, got := flakyServer(t, 0, 0)
	res := newResults()
	d := NewDispatcher(DispatcherConfig{OnResult: res.add})
	defer d.Close(context.Background())
	s := NewService(d, Options{})
	settings := json.RawMessage(`{"url":"` + srv.URL + `/a"}`)
	if err := s.Send("n1", "soc", "webhook", settings, testAlert()); err != nil {
		t.Fatal(err)
	}
	res.final(t)
	first, _ := s.notifier("n1", "soc", "webhook", settings)
	again, _ := s.notifier("n1", "soc", "webhook", settings)
	if first != again {
		t.Error("same settings built a second notifier")
	}
	changed, _ := s.notifier("n1", "soc", "webhook", json.RawMessage(`{"url":"`+srv.URL+`/b"}`))
	if changed == first {
		t.Error("changed settings reused the old notifier")
	}
	err := s.Send("n2", "bad", "webhook", json.RawMessage(`{"url":"nope"}`), testAlert())
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "url" {
		t.Errorf("Send with bad settings = %v, want field url", err)
	}
	s.Forget("n1")
	if len(got()) != 1 {
		t.Errorf("server saw %d requests, want 1", len(got()))
	}
}
