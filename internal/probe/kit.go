package probe

import (
	"context"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilproject/vigil/internal/event"
	"github.com/vigilproject/vigil/internal/kernel"
	"github.com/vigilproject/vigil/internal/proc"
)

// Base is what every probe shares, embedded in the probe's own type: it
// loads the BPF object, owns the decode-error counter, reads the events ring
// buffer and closes everything. It gives the embedding probe Object and
// Close; the probe writes Start (Load plus its own set-up) and Run.
type Base struct {
	Name  string
	Env   *Env
	Obj   *kernel.Object
	Clock *kernel.Clock

	decodeErrs prometheus.Counter
}

// decodeErrors is one metric family for every probe, told apart by label.
func newDecodeErrors(probe string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{
		Name:        "vigil_probe_decode_errors_total",
		Help:        "Ring buffer records that could not be decoded.",
		ConstLabels: prometheus.Labels{"probe": probe},
	})
}

// Load loads spec with opts (opts.Probe and opts.Disabled are filled in from
// the base and env) and registers the decode-error counter. On error nothing
// stays attached.
func (b *Base) Load(env *Env, spec *ebpf.CollectionSpec, opts kernel.LoadOptions) error {
	if b.Name == "" {
		return fmt.Errorf("probe.Base: Name not set")
	}
	opts.Probe = b.Name
	opts.Disabled = env.DisabledHooks
	obj, err := kernel.Load(spec, opts)
	if err != nil {
		return err
	}
	b.Env, b.Obj, b.Clock = env, obj, kernel.NewClock()
	b.decodeErrs = newDecodeErrors(b.Name)
	b.Register(b.decodeErrs)
	return nil
}

// Register registers the probe's collectors with the agent's registry (a
// probe may run without one in tests).
func (b *Base) Register(cs ...prometheus.Collector) {
	if b.Env == nil || b.Env.Registerer == nil {
		return
	}
	for _, c := range cs {
		b.Env.Registerer.MustRegister(c)
	}
}

// Object implements Probe.
func (b *Base) Object() *kernel.Object { return b.Obj }

// Close implements Probe.
func (b *Base) Close() error {
	if b.Obj == nil {
		return nil
	}
	return b.Obj.Close()
}

// NewUprobeSet makes a set that attaches one of the object's programs
// (named in LoadOptions.Later) to binaries found at run time, and registers
// its metrics (binaries attached, attach failures by reason). The object
// closes it.
func (b *Base) NewUprobeSet(opts kernel.UprobeSetOptions) (*kernel.UprobeSet, error) {
	s, err := b.Obj.NewUprobeSet(opts)
	if err != nil {
		return nil, err
	}
	b.Register(s)
	return s, nil
}

// DecodeError counts one record that could not be decoded.
func (b *Base) DecodeError() {
	if b.decodeErrs != nil {
		b.decodeErrs.Inc()
	}
}

// ReadRing hands every record of the "events" ring buffer to handle until
// ctx is done; a record handle rejects with an error counts as a decode
// error. handle must not keep the slice.
func (b *Base) ReadRing(ctx context.Context, handle func([]byte) error) error {
	return b.Obj.ReadRing(ctx, func(rec []byte) {
		if err := handle(rec); err != nil {
			b.DecodeError()
		}
	})
}

// Header builds an event header at kernel time tsNS: the process context the
// kernel filled (kp), completed from the cache entry pr where it describes
// the same process (KernelProc.Process).
func (b *Base) Header(k event.Kind, tsNS uint64, kp KernelProc, pr proc.Process) event.Header {
	return event.Header{Kind: k, Time: b.Clock.Wall(tsNS), Process: kp.Process(pr)}
}

// ValidateRingSize checks a ring-buffer size knob: a power of two of at
// least one page.
func ValidateRingSize(size uint32) error {
	if size < 4096 || size&(size-1) != 0 {
		return fmt.Errorf("ringbuf_size: %d is not a power of two of at least 4096", size)
	}
	return nil
}
