package gossip

import (
	"errors"
	"net"

	"github.com/hashicorp/serf/serf"
)

// Status is a member's state in the pool, as Serf tracks it.
type Status int

// The member statuses. Their values are Serf's, so a Status sent as a
// number (api.Member.Status) means what Consul's does.
const (
	StatusNone    Status = Status(serf.StatusNone)
	StatusAlive   Status = Status(serf.StatusAlive)
	StatusLeaving Status = Status(serf.StatusLeaving)
	StatusLeft    Status = Status(serf.StatusLeft)
	StatusFailed  Status = Status(serf.StatusFailed)
)

// String is the status in Serf's words: "alive", "leaving", "left",
// "failed" or "none".
func (s Status) String() string { return serf.MemberStatus(s).String() }

// Member is one member of the pool.
type Member struct {
	Name   string
	Addr   net.IP
	Port   uint16
	Tags   map[string]string
	Status Status

	// The gossip protocol versions the member speaks and understands.
	ProtocolMin, ProtocolMax, ProtocolCur uint8
	DelegateMin, DelegateMax, DelegateCur uint8
}

func fromSerf(m serf.Member) Member {
	return Member{
		Name: m.Name, Addr: m.Addr, Port: m.Port, Tags: m.Tags, Status: Status(m.Status),
		ProtocolMin: m.ProtocolMin, ProtocolMax: m.ProtocolMax, ProtocolCur: m.ProtocolCur,
		DelegateMin: m.DelegateMin, DelegateMax: m.DelegateMax, DelegateCur: m.DelegateCur,
	}
}

func fromSerfAll(ms []serf.Member) []Member {
	out := make([]Member, len(ms))
	for i, m := range ms {
		out[i] = fromSerf(m)
	}
	return out
}

// EventType says what happened to the members of an Event.
type EventType int

// The member event types.
const (
	EventMemberJoin EventType = iota
	EventMemberLeave
	EventMemberFailed
	EventMemberUpdate
	EventMemberReap
)

// String is the event type in Serf's words, such as "member-join".
func (t EventType) String() string {
	switch t {
	case EventMemberJoin:
		return "member-join"
	case EventMemberLeave:
		return "member-leave"
	case EventMemberFailed:
		return "member-failed"
	case EventMemberUpdate:
		return "member-update"
	case EventMemberReap:
		return "member-reap"
	}
	return "unknown"
}

// Event is a change of one or more members.
type Event struct {
	Type    EventType
	Members []Member
}

// fromSerfEvent converts a Serf member event; ok is false for any other
// Serf event (user events and queries, which Conclave does not use).
func fromSerfEvent(e serf.Event) (Event, bool) {
	me, ok := e.(serf.MemberEvent)
	if !ok {
		return Event{}, false
	}
	var t EventType
	switch me.Type {
	case serf.EventMemberJoin:
		t = EventMemberJoin
	case serf.EventMemberLeave:
		t = EventMemberLeave
	case serf.EventMemberFailed:
		t = EventMemberFailed
	case serf.EventMemberUpdate:
		t = EventMemberUpdate
	case serf.EventMemberReap:
		t = EventMemberReap
	default:
		return Event{}, false
	}
	return Event{Type: t, Members: fromSerfAll(me.Members)}, true
}

// IsDuplicateName reports whether err is a join refused because another
// node holds this node's name (ErrDuplicateName).
func IsDuplicateName(err error) bool { return errors.Is(err, ErrDuplicateName) }

// IsRefusedMerge reports whether err is a join refused because the other
// side is another cluster, another datacenter or a duplicate node ID
// (ErrRefusedMerge).
func IsRefusedMerge(err error) bool { return errors.Is(err, ErrRefusedMerge) }
