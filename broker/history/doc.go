// Package history keeps the online history of presenced: how many users
// were online in the whole server and in each group, sampled every Period
// (10 s, kept an hour) and every Coarse period (1 min, kept 24 hours),
// and the peak of the current UTC day. It is what the dashboard plots and
// what GET /v1/presence/counts/history serves.
//
// # Entry points
//
//   - New(Config) → Service.Start(ctx) → Service.Shutdown(ctx).
//   - Service.Query answers one series (the whole server or a group, one
//     step, from a time) with the day's peak; Service.Steps names the two
//     steps; Service.Stats counts the samples this node wrote, lost to
//     another node, failed to write or skipped.
//
// # Where the samples live
//
// Two JetStream KV buckets, "presenced_history_fine" and
// "presenced_history_coarse" (file storage, the cluster's replicas), with
// a maximum age of their retention plus one coarse period: the samples
// expire by themselves and every node, restarted or not, reads the same.
// Every node follows both buckets (jskv.Follow) and keeps their samples
// in memory, group ids interned, so queries never touch the store: 8 bytes
// per group with anyone online per sample, of 360 fine and 1,440 coarse
// samples (about 14 MB for 1,000 busy groups).
//
// A sample is one key, named by the start of its period in Unix
// milliseconds, whose value is JSON:
//
//	{"online": 12, "groups": {"team": 3, "ops": 1}, "partial": false, "node": "n1"}
//
// online counts distinct users who are not offline; groups holds the
// groups with anyone online (a group absent from a sample had nobody
// online then, unless the sample is partial: beyond MaxGroups groups only
// the busiest are kept). A coarse sample holds, for the server and each
// group, the highest fine sample of its period, so the day's peak is not
// lost between minutes.
//
// # One sample per period for the whole cluster
//
// Every node samples at each period boundary (by its own clock, plus a
// small random delay), unless the presence engine says it is cut off from
// the store (Engine.Available). It writes with a KV Create of the period's
// key: JetStream accepts the first Create of a key and refuses every other
// one, so exactly one node's sample lands, whichever and however many
// nodes try; the others count a loss. A node that already sees the
// period's key (another node was quicker) does not count at all.
//
// Samples go missing only while no node can sample (every node down or
// cut off): the plot then shows a gap, never a made-up value.
package history
