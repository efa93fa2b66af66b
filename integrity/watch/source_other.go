//go:build !linux

package watch

import "errors"

func newFanotify(Config) (source, error) { return nil, errors.New("fanotify is Linux only") }
func newInotify(Config) (source, error)  { return nil, errors.New("inotify is Linux only") }
