// Package baseline stores the recorded state of every watched file: one
// compact binary file per policy set, sorted by path for binary-search
// lookups, sealed with an HMAC-SHA256 so a modified or truncated baseline is
// refused rather than silently trusted, and written atomically so a crash or
// a full disk leaves the previous baseline intact.
package baseline
