package app

import (
	"fmt"
	"slices"
	"strings"

	"github.com/closeloop/closeloop/libs/auth"
	"github.com/closeloop/closeloop/libs/kernel"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/intake/internal/domain"
)

// Who may do what in intake (credentials and roles come from libs/auth):
//   - adapters (kind adapter) submit for their configured channels, attach
//     evidence to and read their channels' complaints;
//   - agents accept, amend, attach, withdraw and read in the clear;
//   - auditors read in the clear;
//   - team leads, managers, senior managers, quality reviewers read masked;
//   - admins erase customers.
var (
	clearReaders  = []string{auth.RoleAgent, auth.RoleAuditor}
	maskedReaders = []string{auth.RoleTeamLead, auth.RoleManager, auth.RoleSeniorManager, auth.RoleQualityReviewer}
	eraseRoles    = []string{auth.RoleAdmin}
)

// ChannelName is a channel as adapters' credentials name it: the enum name
// without its prefix, lower case ("phone", "web_form", "ecommerce").
func ChannelName(ch eventsv1.Channel) string {
	return strings.ToLower(strings.TrimPrefix(ch.String(), "CHANNEL_"))
}

// adapterFor reports whether p is an adapter bound to ch.
func adapterFor(p auth.Principal, ch eventsv1.Channel) bool {
	return p.Kind == auth.KindAdapter && slices.Contains(p.Channels, ChannelName(ch))
}

// errNotYours is what an adapter hears of another channel's complaint:
// exactly what an unknown id answers. A refusal would tell it that the
// complaint exists, and ids derive from (channel, channel_ref), so it could
// probe other channels' references.
var errNotYours = domain.ErrNotFound

func requireRole(p auth.Principal, what string, roles ...string) error {
	if !p.HasRole(roles...) {
		return fmt.Errorf("%w: %s needs role %s", kernel.ErrPermission, what, strings.Join(roles, " or "))
	}
	return nil
}

// ownChannel reports whether the complaint came (or was linked) through one
// of the adapter's channels.
func ownChannel(p auth.Principal, s domain.State) bool {
	if adapterFor(p, s.Received.GetChannel()) {
		return true
	}
	for _, l := range s.Links {
		if adapterFor(p, l.Channel) {
			return true
		}
	}
	return false
}
