package agent

import (
	"context"

	"github.com/mamori-sec/mamori/api"
)

// Commander is an optional module capability: a module that implements it
// receives the manager's commands addressed to it — api.CommandScanNow with
// Args["module"] naming it, api.CommandRebuildBaseline for "integrity". The
// agent acknowledges the command with Command's result. Command should start
// the work and return; long work reports through events.
type Commander interface {
	Command(ctx context.Context, cmd api.Command) error
}
