package derive

import (
	"container/list"
	"strconv"

	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/schema"
)

// LifetimeName is the process_lifetime deriver's name.
const LifetimeName = "process_lifetime"

// lifetimeMaxPending bounds the execs waiting for their exit; beyond it the
// oldest is forgotten (a daemon that never exits) and counted.
const lifetimeMaxPending = 16384

// lifetimeKind is registered here: the deriver is its producer.
var lifetimeKind = schema.MustRegister(schema.Kind{
	Name:     event.KindProcessLifetime,
	Producer: LifetimeName,
	From:     []event.Kind{event.KindExec, event.KindExit},
	Doc: "Derived from exec and exit: one event per program that ended, with what it ran (filename, argv) " +
		"and how it ended (exit code, signal, run time). Processes that exit without a watched exec give none.",
	Columns: []schema.Column{
		{Header: "TIME", Field: "time"}, {Header: "PID", Field: "pid"}, {Header: "PPID", Field: "ppid"},
		{Header: "COMM", Field: "comm"}, {Header: "CODE", Field: "exit_code"}, {Header: "SIGNAL", Field: "signal"},
		{Header: "RUN_S", Field: "run_seconds"},
		{Header: "ARGS", Format: func(ev event.Event) string {
			e := ev.(*event.ProcessLifetime)
			args := schema.QuoteArgs(e.Args)
			if e.ArgsTruncated {
				args += " ..."
			}
			return args
		}},
	},
}, event.ProcessLifetime{})

func init() {
	Register(Spec{
		Name:     LifetimeName,
		Help:     "joins each exec with the exit of its process into a process_lifetime event",
		Consumes: []event.Kind{event.KindExec, event.KindExit},
		Produces: []*schema.Kind{lifetimeKind},
		New:      func(env Env) Deriver { return newLifetime(env, lifetimeMaxPending) },
	})
}

// lifetime remembers the last successful exec of each process (by pid and
// start time) until the process exits.
type lifetime struct {
	env     Env
	max     int
	pending map[string]*list.Element // identity -> *pendingExec in order
	order   *list.List               // oldest first
}

type pendingExec struct {
	id    string
	exec  *event.Exec
	execs int
}

func newLifetime(env Env, max int) *lifetime {
	return &lifetime{env: env, max: max, pending: map[string]*list.Element{}, order: list.New()}
}

// identity is pid plus start time at clock-tick precision: a pid reused by
// a new process is another process.
func identity(h *event.Header) string {
	return strconv.FormatUint(uint64(h.PID), 10) + "@" + strconv.FormatUint(h.StartNS/10_000_000, 10)
}

func (l *lifetime) Consume(ev event.Event) {
	switch e := ev.(type) {
	case *event.Exec:
		if e.Ret != 0 {
			return // a failed exec changes nothing: the old program runs on
		}
		id := identity(&e.Header)
		if el, ok := l.pending[id]; ok {
			p := el.Value.(*pendingExec)
			p.exec, p.execs = e, p.execs+1
			l.order.MoveToBack(el)
			return
		}
		if l.order.Len() >= l.max {
			oldest := l.order.Front()
			delete(l.pending, oldest.Value.(*pendingExec).id)
			l.order.Remove(oldest)
			l.env.Drop("pending_full")
		}
		l.pending[id] = l.order.PushBack(&pendingExec{id: id, exec: e, execs: 1})
	case *event.Exit:
		id := identity(&e.Header)
		el, ok := l.pending[id]
		if !ok {
			return // forked and never exec'd, or exec'd before we watched
		}
		delete(l.pending, id)
		l.order.Remove(el)
		p := el.Value.(*pendingExec)
		out := &event.ProcessLifetime{
			Header:          e.Header,
			Filename:        p.exec.Filename,
			Args:            p.exec.Args,
			ArgsTruncated:   p.exec.ArgsTruncated,
			ExecTime:        p.exec.Time,
			Execs:           p.execs,
			ExitCode:        e.ExitCode,
			Signal:          e.Signal,
			CoreDumped:      e.CoreDumped,
			LifetimeSeconds: e.LifetimeSeconds,
			RunSeconds:      e.Time.Sub(p.exec.Time).Seconds(),
		}
		out.Kind = event.KindProcessLifetime
		if out.Exe == "" {
			out.Exe = p.exec.Exe
		}
		l.env.Emit(out)
	}
}
