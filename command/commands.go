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
	commands := map[string]func() cli.Command{
		"agent":                         func() cli.Command { return &AgentCommand{Ui: ui} },
		"force-leave":                   func() cli.Command { return &ForceLeaveCommand{Meta: meta} },
		"health":                        func() cli.Command { return &HealthCommand{Meta: meta} },
		"info":                          func() cli.Command { return &InfoCommand{Meta: meta} },
		"join":                          func() cli.Command { return &JoinCommand{Meta: meta} },
		"keygen":                        func() cli.Command { return &KeygenCommand{Ui: ui} },
		"keyring":                       func() cli.Command { return &KeyringCommand{Meta: meta} },
		"kv":                            func() cli.Command { return &KVCommand{} },
		"kv delete":                     func() cli.Command { return &KVDeleteCommand{Meta: meta} },
		"kv get":                        func() cli.Command { return &KVGetCommand{Meta: meta} },
		"kv put":                        func() cli.Command { return &KVPutCommand{Meta: meta} },
		"leave":                         func() cli.Command { return &LeaveCommand{Meta: meta} },
		"lock":                          func() cli.Command { return &LockCommand{Meta: meta} },
		"reload":                        func() cli.Command { return &ReloadCommand{Meta: meta} },
		"members":                       func() cli.Command { return &MembersCommand{Meta: meta} },
		"monitor":                       func() cli.Command { return &MonitorCommand{Meta: meta} },
		"operator":                      func() cli.Command { return &OperatorCommand{} },
		"operator autopilot":            func() cli.Command { return &OperatorAutopilotCommand{} },
		"operator autopilot get-config": func() cli.Command { return &OperatorAutopilotGetConfigCommand{Meta: meta} },
		"operator autopilot health":     func() cli.Command { return &OperatorAutopilotHealthCommand{Meta: meta} },
		"operator autopilot set-config": func() cli.Command { return &OperatorAutopilotSetConfigCommand{Meta: meta} },
		"operator autopilot state":      func() cli.Command { return &OperatorAutopilotStateCommand{Meta: meta} },
		"operator bootstrap":            func() cli.Command { return &OperatorBootstrapCommand{Meta: meta} },
		"operator discover":             func() cli.Command { return &OperatorDiscoverCommand{Meta: meta} },
		"operator raft":                 func() cli.Command { return &OperatorRaftCommand{} },
		"operator raft list-peers":      func() cli.Command { return &OperatorRaftListPeersCommand{Meta: meta} },
		"operator raft recover-plan":    func() cli.Command { return &OperatorRaftRecoverPlanCommand{Meta: meta} },
		"operator raft remove-peer":     func() cli.Command { return &OperatorRaftRemovePeerCommand{Meta: meta} },
		"operator raft transfer-leader": func() cli.Command { return &OperatorRaftTransferLeaderCommand{Meta: meta} },
		"session":                       func() cli.Command { return &SessionCommand{} },
		"session destroy":               func() cli.Command { return &SessionDestroyCommand{Meta: meta} },
		"session info":                  func() cli.Command { return &SessionInfoCommand{Meta: meta} },
		"session list":                  func() cli.Command { return &SessionListCommand{Meta: meta} },
		"snapshot":                      func() cli.Command { return &SnapshotCommand{} },
		"snapshot inspect":              func() cli.Command { return &SnapshotInspectCommand{Ui: ui} },
		"snapshot restore":              func() cli.Command { return &SnapshotRestoreCommand{Meta: meta} },
		"snapshot save":                 func() cli.Command { return &SnapshotSaveCommand{Meta: meta} },
		"tls":                           func() cli.Command { return &TLSCommand{} },
		"tls ca":                        func() cli.Command { return &TLSCACommand{} },
		"tls ca create":                 func() cli.Command { return &TLSCACreateCommand{Ui: ui} },
		"tls cert":                      func() cli.Command { return &TLSCertCommand{} },
		"tls cert create":               func() cli.Command { return &TLSCertCreateCommand{Ui: ui} },
		"validate":                      func() cli.Command { return &ValidateCommand{Ui: ui} },
		"version":                       func() cli.Command { return &VersionCommand{Ui: ui} },
	}
	factories := make(map[string]cli.CommandFactory, len(commands))
	for name, command := range commands {
		factories[name] = func() (cli.Command, error) { return command(), nil }
	}
	return factories
}
