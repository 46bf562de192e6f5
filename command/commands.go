package command

import (
	"github.com/hashicorp/cli"
)

// Commands returns the factories of every conclave command, keyed by the
// words that invoke it. A key with spaces, such as
// "operator raft list-peers", is a subcommand; cli.CLI lists it under its
// parent's help. Every command writes to ui.
func Commands(ui cli.Ui) map[string]cli.CommandFactory {
	meta := Meta{Ui: ui}
	return map[string]cli.CommandFactory{
		"agent": func() (cli.Command, error) {
			return &AgentCommand{Ui: ui}, nil
		},
		"force-leave": func() (cli.Command, error) {
			return &ForceLeaveCommand{Meta: meta}, nil
		},
		"health": func() (cli.Command, error) {
			return &HealthCommand{Meta: meta}, nil
		},
		"info": func() (cli.Command, error) {
			return &InfoCommand{Meta: meta}, nil
		},
		"join": func() (cli.Command, error) {
			return &JoinCommand{Meta: meta}, nil
		},
		"keygen": func() (cli.Command, error) {
			return &KeygenCommand{Ui: ui}, nil
		},
		"keyring": func() (cli.Command, error) {
			return &KeyringCommand{Meta: meta}, nil
		},
		"kv": func() (cli.Command, error) {
			return &KVCommand{}, nil
		},
		"kv delete": func() (cli.Command, error) {
			return &KVDeleteCommand{Meta: meta}, nil
		},
		"kv get": func() (cli.Command, error) {
			return &KVGetCommand{Meta: meta}, nil
		},
		"kv put": func() (cli.Command, error) {
			return &KVPutCommand{Meta: meta}, nil
		},
		"leave": func() (cli.Command, error) {
			return &LeaveCommand{Meta: meta}, nil
		},
		"lock": func() (cli.Command, error) {
			return &LockCommand{Meta: meta}, nil
		},
		"reload": func() (cli.Command, error) {
			return &ReloadCommand{Meta: meta}, nil
		},
		"members": func() (cli.Command, error) {
			return &MembersCommand{Meta: meta}, nil
		},
		"monitor": func() (cli.Command, error) {
			return &MonitorCommand{Meta: meta}, nil
		},
		"operator": func() (cli.Command, error) {
			return &OperatorCommand{}, nil
		},
		"operator autopilot": func() (cli.Command, error) {
			return &OperatorAutopilotCommand{}, nil
		},
		"operator autopilot get-config": func() (cli.Command, error) {
			return &OperatorAutopilotGetConfigCommand{Meta: meta}, nil
		},
		"operator autopilot health": func() (cli.Command, error) {
			return &OperatorAutopilotHealthCommand{Meta: meta}, nil
		},
		"operator autopilot set-config": func() (cli.Command, error) {
			return &OperatorAutopilotSetConfigCommand{Meta: meta}, nil
		},
		"operator autopilot state": func() (cli.Command, error) {
			return &OperatorAutopilotStateCommand{Meta: meta}, nil
		},
		"operator bootstrap": func() (cli.Command, error) {
			return &OperatorBootstrapCommand{Meta: meta}, nil
		},
		"operator discover": func() (cli.Command, error) {
			return &OperatorDiscoverCommand{Meta: meta}, nil
		},
		"operator raft": func() (cli.Command, error) {
			return &OperatorRaftCommand{}, nil
		},
		"operator raft list-peers": func() (cli.Command, error) {
			return &OperatorRaftListPeersCommand{Meta: meta}, nil
		},
		"operator raft remove-peer": func() (cli.Command, error) {
			return &OperatorRaftRemovePeerCommand{Meta: meta}, nil
		},
		"operator raft transfer-leader": func() (cli.Command, error) {
			return &OperatorRaftTransferLeaderCommand{Meta: meta}, nil
		},
		"session": func() (cli.Command, error) {
			return &SessionCommand{}, nil
		},
		"session destroy": func() (cli.Command, error) {
			return &SessionDestroyCommand{Meta: meta}, nil
		},
		"session info": func() (cli.Command, error) {
			return &SessionInfoCommand{Meta: meta}, nil
		},
		"session list": func() (cli.Command, error) {
			return &SessionListCommand{Meta: meta}, nil
		},
		"snapshot": func() (cli.Command, error) {
			return &SnapshotCommand{}, nil
		},
		"snapshot inspect": func() (cli.Command, error) {
			return &SnapshotInspectCommand{Ui: ui}, nil
		},
		"snapshot restore": func() (cli.Command, error) {
			return &SnapshotRestoreCommand{Meta: meta}, nil
		},
		"snapshot save": func() (cli.Command, error) {
			return &SnapshotSaveCommand{Meta: meta}, nil
		},
		"tls": func() (cli.Command, error) {
			return &TLSCommand{}, nil
		},
		"tls ca": func() (cli.Command, error) {
			return &TLSCACommand{}, nil
		},
		"tls ca create": func() (cli.Command, error) {
			return &TLSCACreateCommand{Ui: ui}, nil
		},
		"tls cert": func() (cli.Command, error) {
			return &TLSCertCommand{}, nil
		},
		"tls cert create": func() (cli.Command, error) {
			return &TLSCertCreateCommand{Ui: ui}, nil
		},
		"validate": func() (cli.Command, error) {
			return &ValidateCommand{Ui: ui}, nil
		},
		"version": func() (cli.Command, error) {
			return &VersionCommand{Ui: ui}, nil
		},
	}
}
