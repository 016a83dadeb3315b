// Package webhook delivers presence changes to HTTP endpoints that
// operators register: signed, batched, in order per endpoint, retried with
// backoff, and never at the cost of the broker.
//
// # Entry points
//
//   - New(Config) → Service.Start(ctx) → Service.Shutdown(ctx).
//   - Service.Routes mounts the REST API (scope "admin"):
//     GET/POST /v1/webhooks, GET/PATCH/DELETE /v1/webhooks/{id},
//     GET /v1/webhooks/{id}/status. Handlers return *HTTPError for the
//     caller to render as {"error":{"code","message"}}.
//   - Service.Stats, Service.Status and Service.Collectors (Prometheus:
//     presenced_webhook_delivered_total, _batches_total,
//     _failed_attempts_total, _dropped_total, presenced_webhook_queued).
//   - Open(ctx, StoreConfig) is the registrations' store on its own.
//   - Verify (and Sign) for receivers.
//
// # Registrations
//
// Webhooks live in a JetStream KV bucket (default "presenced_webhooks",
// file storage) as JSON under their id: {id, url, secret, users,
// createdAt, disabled}. Every node watches the bucket, so every node knows
// every webhook. The secret is generated when not given and shown only in
// the answer to the creation. Users, when not empty, restricts a webhook to
// the changes of those users.
//
// # Delivery
//
// Every status change is published once on presenced.changes.<user>
// (presence.SubjectChanges). Each node subscribes with the queue group
// "presenced-webhooks", so each change reaches one node, which queues it
// for every enabled webhook that wants it. The callback only queues: each
// webhook has a queue of at most QueueLimit changes (default 10,000) per
// node, and past it the oldest are dropped and counted
// (presenced_webhook_dropped_total). One goroutine per webhook and node
// takes batches of up to BatchSize changes (default 100), sent when full
// or BatchWait (default 1s) after their first change arrived, and POSTs
// each as
//
//	{"webhook":"wh_…","node":"…","batch":7,"changes":[{"user","status","text","since","rev"},…]}
//
// with the headers
//
//	Content-Type: application/json
//	X-Presenced-Signature: sha256=<hex HMAC-SHA256 of the body keyed with the secret>
//	X-Presenced-Timestamp: <Unix seconds of the attempt>
//	X-Presenced-Batch: 7
//	X-Presenced-Webhook: wh_…
//	X-Presenced-Node: …
//
// A 2xx answer delivers the batch. Anything else (another status, a
// redirect, a timeout, no connection) is retried with exponential backoff
// and jitter, from MinBackoff (250ms) up to MaxBackoff (30s), honoring a
// Retry-After in seconds; the retry sends the same body. A batch is retried
// until delivered, and the batches after it wait: from one node, an
// endpoint accepts its batches in order, with consecutive numbers, none
// lost while it recovers. While it fails, changes queue up to the limit.
// Delivery is at least once: an answer lost on the way back (a timeout
// after the receiver took the batch) makes the same body come again, which
// the receiver recognizes by (node, batch). Deleting or disabling a webhook
// abandons its batch in flight.
//
// Batch numbers count from 1 per webhook and node; "node" differs between
// processes, so (node, batch) names a batch. Since the queue group spreads
// changes over the nodes, batches from different nodes may interleave: a
// receiver that keeps the latest status per user should keep the change
// with the highest rev, which orders every change of the cluster.
//
// Shutdown stops taking changes and sends what is queued until its context
// ends. Changes are not persisted: what a node holds when it dies is lost,
// as are changes published while no node is subscribed.
//
// # Receiving
//
// Verify the signature over the raw body before decoding it:
//
//	func receive(w http.ResponseWriter, r *http.Request) {
//		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
//		if err != nil || !webhook.Verify(secret, body, r.Header.Get(webhook.HeaderSignature)) {
//			http.Error(w, "bad signature", http.StatusUnauthorized)
//			return
//		}
//		var b struct {
//			Webhook string            `json:"webhook"`
//			Node    string            `json:"node"`
//			Batch   uint64            `json:"batch"`
//			Changes []presence.Change `json:"changes"`
//		}
//		_ = json.Unmarshal(body, &b)
//		// … apply b.Changes, then answer 2xx
//		w.WriteHeader(http.StatusNoContent)
//	}
//
// Answer quickly: a slow answer holds back that endpoint's next batches on
// that node (each attempt is bounded by Timeout, default 10s).
package webhook
