// Package webhook delivers presence changes to HTTP endpoints that
// operators register: signed, batched, in order per endpoint, at least
// once through the death of any node, retried with backoff, and never at
// the cost of the broker.
//
// # Entry points
//
//   - New(Config) → Service.Start(ctx) → Service.Shutdown(ctx).
//   - Service.API returns the REST handlers (scope "admin"):
//     GET/POST /v1/webhooks, GET/PATCH/DELETE /v1/webhooks/{id},
//     GET /v1/webhooks/{id}/status. Handlers return *HTTPError for the
//     caller to render as {"error":{"code","message"}}.
//   - Service.Stats, Service.Status and Service.Collectors (Prometheus:
//     presenced_webhook_delivered_total, _batches_total,
//     _failed_attempts_total, _dropped_total, presenced_webhook_queued,
//     presenced_webhook_delivering).
//   - Open(ctx, StoreConfig) is the registrations' store on its own.
//   - Verify (and Sign) for receivers.
//
// Files: webhook.go (a registration), store.go (the bucket), guard.go
// (which targets are allowed), stream.go (the change stream and the
// consumers), service.go (the node's webhooks), worker.go (one webhook on
// one node), claim.go (taking a webhook over), send.go (batches and
// attempts), batch.go (the body and its id), delivery.go (the HTTP
// client), retryafter.go, signature.go, stats.go and status.go (the
// counters), metrics.go, api.go, errors.go, config.go.
//
// # Registrations
//
// Webhooks live in a JetStream KV bucket (default "presenced_webhooks",
// file storage) as JSON under their id: {id, url, secret, users,
// createdAt, disabled, enabledAt}. Every node watches the bucket, so every
// node knows every webhook. The secret is generated when not given and
// shown only in the answer to the creation. Users, when not empty,
// restricts a webhook to the changes of those users. A disabled webhook
// receives nothing; the changes made while it was disabled are skipped,
// not delivered when it is enabled again.
//
// The target must be a public address unless Config.AllowPrivate is set
// (the broker's --webhook-allow-private): loopback, private (RFC 1918,
// unique-local IPv6), link-local (cloud metadata services), unspecified,
// multicast, shared (100.64.0.0/10) and reserved ranges are refused,
// including IPv4 addresses mapped or embedded in IPv6. The host is
// resolved at registration and refused when any of its addresses is such
// (a name that does not resolve is refused too), and every connection
// checks the address it actually dials, so a name that resolves elsewhere
// later (DNS rebinding) reaches no private address either. Redirects are
// never followed: a 3xx is a failed attempt.
//
// # Delivery
//
// Every status change the presence engine's leader reads is published once
// on presenced.changes.<user> (presence.SubjectChanges, core NATS); one
// replaced in the presence bucket before the leader read it is not.
// Start creates the stream Config.Stream (default "presenced_changes",
// file storage, the cluster's replicas) that keeps that feed for
// StreamMaxAge (default 24h), within StreamMaxBytes (1 GiB) and QueueLimit
// changes (1,000,000). Each webhook has a durable consumer of it named by
// its id, filtered to its users when it has a list, starting at its
// creation; deleting the webhook deletes the consumer. A change published
// while the stream has no leader (a cluster electing one) is not kept.
//
// Every node pulls from every webhook's consumer in one priority group
// with the pinned-client policy: the server hands the webhook's changes to
// one node only, the pinned one, and keeps it pinned while it asks for
// more at least every FailoverAfter (default 5s; the node asks four times
// as often). A node that dies or hangs stops asking: after FailoverAfter
// the server pins another node, which carries on. That node first resets
// the consumer to its acknowledged floor, so that the changes the previous
// node took and did not acknowledge come again, in stream order, and it
// sends the batch the previous node was sending again whole, with the same
// id. A graceful Shutdown lets the attempt in flight finish, then unpins
// and hands the changes back, so another node carries on at once.
//
// The pinned node takes batches of up to BatchSize changes (default 100),
// sent when full or BatchWait (default 1s) after their first change was
// taken, and POSTs each as
//
//	{"webhook":"wh_…","batch":"118-130","changes":[{"user","status","text","since","rev"},…]}
//
// with the headers
//
//	Content-Type: application/json
//	X-Presenced-Timestamp: <Unix seconds of the attempt>
//	X-Presenced-Signature: sha256=<hex HMAC-SHA256, keyed with the secret, of "<timestamp>.<body>">
//	X-Presenced-Batch: 118-130
//	X-Presenced-Webhook: wh_…
//	X-Presenced-Node: <the sending node>
//
// The batch id is the range of stream sequences the batch covers: the same
// changes sent again, by any node, after any restart, carry the same id
// and the same body. A 2xx answer delivers the batch, which is then
// acknowledged in the stream; anything else (another status, a redirect, a
// timeout, no connection, a target address refused) is retried with
// exponential backoff and jitter, from MinBackoff (250ms) up to MaxBackoff
// (30s), honoring a Retry-After in seconds; each retry is signed anew with
// its own timestamp. A batch is retried until delivered, and the batches
// after it wait in the stream: an endpoint accepts its batches in order,
// none lost while it recovers, unless it fails for longer than the stream
// keeps changes (those that age out are counted as dropped).
//
// Delivery is at least once: a 2xx lost on the way back (a timeout after
// the receiver took the batch, or the node dying before it acknowledged)
// makes the same batch come again, which the receiver recognizes by its
// id. Receivers that keep the latest status per user can also keep the
// change with the highest rev, which orders every change of the cluster.
//
// # Receiving
//
// Verify the signature and the age of the timestamp over the raw body
// before decoding it, and drop a batch id already applied:
//
//	func receive(w http.ResponseWriter, r *http.Request) {
//		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
//		if err != nil || !webhook.Verify(secret, body, r.Header.Get(webhook.HeaderTimestamp),
//			r.Header.Get(webhook.HeaderSignature), 5*time.Minute) {
//			http.Error(w, "bad signature", http.StatusUnauthorized)
//			return
//		}
//		var b struct {
//			Webhook string            `json:"webhook"`
//			Batch   string            `json:"batch"`
//			Changes []presence.Change `json:"changes"`
//		}
//		_ = json.Unmarshal(body, &b)
//		if !seen(b.Webhook, b.Batch) {
//			// … apply b.Changes
//		}
//		w.WriteHeader(http.StatusNoContent)
//	}
//
// Answer quickly: a slow answer holds back that endpoint's next batches
// (each attempt is bounded by Timeout, default 10s).
package webhook
