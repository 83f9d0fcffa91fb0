package alert

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// stateVersion guards against reading a file written by an incompatible
// future version.
const stateVersion = 1

type stateFile struct {
	Version int                `json:"version"`
	Active  []stateEntry       `json:"active"`
	Queues  map[string][]Alert `json:"queues"`
}

type stateEntry struct {
	Alert      Alert     `json:"alert"`
	Source     string    `json:"source"`
	LastQueued time.Time `json:"last_queued"`
}

// load restores active alerts and undelivered notices. Queues of notifiers
// that are no longer configured are discarded.
func (d *Dispatcher) load() error {
	if d.opts.StateFile == "" {
		return nil
	}
	b, err := os.ReadFile(d.opts.StateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var st stateFile
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("%s: %w", d.opts.StateFile, err)
	}
	if st.Version != stateVersion {
		return fmt.Errorf("%s: unsupported state version %d", d.opts.StateFile, st.Version)
	}
	for _, e := range st.Active {
		if len(e.Alert.Labels) == 0 || len(d.active) >= d.opts.MaxActive {
			continue
		}
		d.active[e.Alert.Fingerprint()] = &tracked{alert: e.Alert, source: e.Source, lastQueued: e.LastQueued}
	}
	for _, w := range d.workers {
		for _, a := range st.Queues[w.n.Name()] {
			w.q.push(a)
		}
		d.m.queueLen.WithLabelValues(w.n.Name()).Set(float64(w.q.len()))
	}
	d.m.active.Set(float64(len(d.active)))
	return nil
}

// saveIfChanged writes the state file atomically (temp file + rename) when
// the active set or any queue changed since the last save.
func (d *Dispatcher) saveIfChanged() error {
	if d.opts.StateFile == "" {
		return nil
	}
	st := stateFile{Version: stateVersion, Queues: map[string][]Alert{}}
	gens := make([]uint64, len(d.workers))
	changed := false
	for i, w := range d.workers {
		items, gen := w.q.snapshot()
		gens[i] = gen
		if gen != d.saved[i] {
			changed = true
		}
		if len(items) > 0 {
			st.Queues[w.n.Name()] = items
		}
	}
	d.mu.Lock()
	if d.dirty {
		changed = true
	}
	for _, t := range d.active {
		st.Active = append(st.Active, stateEntry{Alert: t.alert, Source: t.source, LastQueued: t.lastQueued})
	}
	d.dirty = false
	d.mu.Unlock()
	if !changed {
		return nil
	}
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(d.opts.StateFile, b); err != nil {
		d.mu.Lock()
		d.dirty = true // try again next tick
		d.mu.Unlock()
		return err
	}
	d.saved = gens
	return nil
}

func writeFileAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
