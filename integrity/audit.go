package integrity

import (
	"encoding/json"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"

	"github.com/mamori-sec/mamori/event"
)

// Actor is who asked for a baseline change.
type Actor struct {
	UID      int
	User     string
	SudoUser string // the account behind sudo, when there is one
	PID      int
	Via      string // "cli", "manager" …
}

// CurrentActor describes the calling process.
func CurrentActor(via string) Actor {
	a := Actor{UID: os.Getuid(), PID: os.Getpid(), Via: via, SudoUser: os.Getenv("SUDO_USER")}
	if u, err := user.LookupId(strconv.Itoa(a.UID)); err == nil {
		a.User = u.Username
	}
	return a
}

// maxAuditLines bounds the accepted changes quoted in one audit event.
const maxAuditLines = 1000

// AuditEvent is the record of an init or update: who accepted which
// findings into which baseline.
func AuditEvent(kind event.Kind, rep *Report, baselinePath string, only []string, a Actor, host string) event.Event {
	uid := a.UID
	ev := event.Event{
		Kind:     kind,
		Severity: event.SeverityInfo,
		Module:   "integrity",
		Host:     host,
		Action:   "allowed",
		Process:  &event.Process{PID: a.PID, UID: &uid, User: a.User},
		User:     &event.User{Name: a.User, UID: &uid},
		Fields: map[string]string{
			"baseline": baselinePath,
			"entries":  strconv.Itoa(rep.Entries),
			"accepted": strconv.Itoa(len(rep.Findings)),
			"via":      a.Via,
		},
	}
	if exe, err := os.Executable(); err == nil {
		ev.Process.Exe = exe
	}
	if a.SudoUser != "" {
		ev.Fields["sudo_user"] = a.SudoUser
	}
	if len(only) > 0 {
		ev.Fields["only"] = strings.Join(only, " ")
	}
	for i, f := range rep.Findings {
		if i == maxAuditLines {
			ev.Evidence = append(ev.Evidence, fmt.Sprintf("… %d more", len(rep.Findings)-i))
			break
		}
		var attrs []string
		for _, c := range f.Changes {
			attrs = append(attrs, c.Attr+" "+c.Old+" -> "+c.New)
		}
		ev.Evidence = append(ev.Evidence, strings.TrimSpace(f.What+" "+DisplayPath(f.Path)+" "+strings.Join(attrs, "; ")))
	}
	who := a.User
	if a.SudoUser != "" {
		who += " (sudo by " + a.SudoUser + ")"
	}
	if kind == event.KindIntegrityBaselineInit {
		ev.Message = fmt.Sprintf("baseline %s built by %s: %d entries", baselinePath, who, rep.Entries)
	} else {
		ev.Message = fmt.Sprintf("baseline %s updated by %s: %d changes accepted", baselinePath, who, len(rep.Findings))
	}
	ev.Fill()
	return ev
}

// AuditPath is the append-only audit log kept next to a baseline.
func AuditPath(baselinePath string) string { return baselinePath + ".audit.jsonl" }

// AppendAudit appends ev as one JSON line to the audit log and syncs it.
func AppendAudit(path string, ev event.Event) error {
	b, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encoding audit record: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("writing audit record: %w", err)
	}
	defer f.Close()
	if _, err := f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("writing audit record: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing audit record: %w", err)
	}
	return nil
}
