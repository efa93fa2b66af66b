// Package watch detects changes to watched files in real time. As root it
// uses fanotify with filesystem marks and directory file handles
// (FAN_REPORT_DFID_NAME): no per-directory watch limit, and the kernel
// names the process behind each event, which is resolved at once to its
// executable and user. Otherwise it falls back to inotify, whose watch
// limit is detected and reported, and which cannot name the process.
// Events are coalesced per path and verified against the baseline before
// they are reported: a write that leaves the recorded state as it was
// (content restored, only times moved) is not an alert.
package watch
