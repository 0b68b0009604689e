package store

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/catalog-pipeline/pipeline/catalog"
)

// Status item type and level Backstage uses for processing errors.
const (
	statusTypeProcessing = "backstage.io/catalog-processing"
	statusLevelError     = "error"
	conflictErrorName    = "ConflictError"
	etagLen              = 40
)

func conflictError(msg string) catalog.SerializedError {
	return catalog.SerializedError{Name: conflictErrorName, Message: msg}
}

// stitchAll rebuilds the final entity of every ref marked in this
// transaction. Sorted so that a batch always writes in the same order.
func (w *writer) stitchAll() error {
	refs := make([]string, 0, len(w.stitch))
	for ref := range w.stitch {
		refs = append(refs, ref)
	}
	slices.Sort(refs)
	for _, ref := range refs {
		if err := w.stitchOne(ref); err != nil {
			return fmt.Errorf("stitch %s: %w", ref, err)
		}
	}
	return nil
}

// stitchOne builds the served entity: the processed entity, every relation
// whose source it is (whoever emitted it), its errors as status.items, a
// stable uid, and an etag that is the hash of everything else — so the etag
// changes exactly when the served JSON does.
func (w *writer) stitchOne(ref string) error {
	st, err := w.getState(ref)
	if err != nil || st == nil || st.Processed == nil {
		return err
	}
	var e map[string]any
	if err := json.Unmarshal(st.Processed, &e); err != nil {
		return fmt.Errorf("decode processed entity: %w", err)
	}
	md, _ := e["metadata"].(map[string]any)
	if md == nil {
		md = map[string]any{}
		e["metadata"] = md
	}
	delete(md, "uid")
	sourceEtag, _ := md["etag"].(string)
	delete(md, "etag")

	rels := []any{}
	p := prefix(ref)
	c := w.bySource.Cursor()
	var last []byte
	for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
		rest := k[len(p):]
		tt := rest[:bytes.LastIndexByte(rest, 0)] // type ‖ 0 ‖ target
		if bytes.Equal(tt, last) {
			continue
		}
		last = bytes.Clone(tt)
		i := bytes.IndexByte(tt, 0)
		rels = append(rels, map[string]any{"type": string(tt[:i]), "targetRef": string(tt[i+1:])})
	}
	e["relations"] = rels
	delete(e, "status")
	if len(st.Errors) > 0 {
		items := make([]any, 0, len(st.Errors))
		for _, se := range st.Errors {
			items = append(items, map[string]any{
				"type":    statusTypeProcessing,
				"level":   statusLevelError,
				"message": se.Name + ": " + se.Message,
				"error":   map[string]any{"name": se.Name, "message": se.Message},
			})
		}
		e["status"] = map[string]any{"items": items}
	}
	md["uid"] = st.UID
	body, err := json.Marshal(e)
	if err != nil {
		return err
	}
	sum := sha1.Sum(body)
	etag := hex.EncodeToString(sum[:])
	if old := w.final.Get([]byte(ref)); len(old) >= etagLen && string(old[:etagLen]) == etag {
		return nil
	}
	if sourceEtag != "" {
		md["etag"] = sourceEtag
	} else {
		md["etag"] = etag
	}
	body, err = json.Marshal(e)
	if err != nil {
		return err
	}
	v := make([]byte, 0, etagLen+len(body))
	v = append(append(v, etag...), body...)
	w.stats.Stitched++
	return w.final.Put([]byte(ref), v)
}
