package manager

import (
	"context"
	"encoding/json"

	"github.com/mamori-sec/mamori/api"
	"github.com/mamori-sec/mamori/event"
)

// validateNotifierConfig checks a notifier's settings.
// TODO(notify merge): decode with manager/notify's config types.
func validateNotifierConfig(typ string, cfg json.RawMessage) error { return nil }

// notify sends an alert to the rule's notifiers.
// TODO(notify merge): hand to manager/notify senders.
func (m *Manager) notify(ctx context.Context, ar api.AlertRule, a api.Alert, e event.Event) {}
