package cli

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/mamori-sec/mamori/malware"
	"github.com/mamori-sec/mamori/malware/onaccess"
)

// runWatch scans on access until interrupted: fanotify (blocking) as root,
// else inotify (after the fact), said on stderr.
func runWatch(ctx context.Context, stdout, stderr io.Writer, eng *malware.Engine, f scanFlags, paths []string) error {
	maxSize, _ := parseSize(f.maxFileSize)
	var mu sync.Mutex
	err := onaccess.Watch(ctx, eng, onaccess.Config{
		Paths: paths, Exclude: f.exclude, MaxFileSize: maxSize,
		Ready: func(mode string) { fmt.Fprintf(stderr, "mamori: watching %v on access, mode %s\n", paths, mode) },
		Report: func(r malware.Result, denied, timedOut bool) {
			mu.Lock()
			defer mu.Unlock()
			action := "alerted"
			if denied {
				action = "denied"
			}
			if timedOut {
				fmt.Fprintf(stdout, "%s: TIMEOUT (open allowed)\n", r.Path)
			}
			if f.json {
				for _, e := range r.Events("antimalware", action) {
					if b, err := e.MarshalOCSF(); err == nil {
						fmt.Fprintf(stdout, "%s\n", b)
					}
				}
				return
			}
			for _, d := range r.Detections {
				fmt.Fprintf(stdout, "%s: %s FOUND (%s)\n", r.Path, d.Rule, action)
			}
			if r.Err != nil {
				fmt.Fprintf(stdout, "%s: ERROR %v\n", r.Path, r.Err)
			}
		},
	})
	if err != nil {
		return &ExitError{Code: 2, Err: err}
	}
	return nil
}
