// Package spine holds the whole-system tests of the agent/manager spine: a
// real manager (in process, or the mamori binary as a subprocess that can
// be SIGKILLed) on SQLite and PostgreSQL, and real agents (in process, or
// this test binary re-executed as an agent, optionally inside a network
// namespace). The fault tests count events in the store: after every crash
// and outage each emitted event must be there exactly once.
package spine
