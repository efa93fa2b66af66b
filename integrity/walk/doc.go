// Package walk walks the paths of an integrity policy and records each
// object's attributes: a pool of workers over all cores shares one queue of
// directories and files, so stat, readdir and hashing overlap. Nothing is
// ever followed or opened blocking: objects are lstat'ed first, only regular
// files are opened (O_NOFOLLOW|O_NONBLOCK) and a file that changes or is
// replaced while it is hashed is reported as such, never as a false change.
package walk
