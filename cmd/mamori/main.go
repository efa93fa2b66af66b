// Command mamori is the agent, the manager and the standalone scanners in one
// binary.
package main

import (
	"os"

	"github.com/mamori-sec/mamori/internal/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:])) }
