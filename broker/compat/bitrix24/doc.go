// Package bitrix24 serves Bitrix24's REST method sonet_group.user.get, the
// participants of a workgroup with their roles, from presenced's membership
// index:
//
//	/rest/sonet_group.user.get[.json]                  OAuth: auth, access_token or Bearer
//	/rest/{userId}/{secret}/sonet_group.user.get[.json] incoming webhook
//
// GET or POST, with parameters in the query, a form, a multipart body or a
// JSON body. New builds a Handler from a Config; the broker mounts it at
// /rest/ and passes the full request path. Answers carry Bitrix24's time
// object; errors use its {"error","error_description"} bodies
// (shared/compat-spec.md §5, broker/compat/README.md).
package bitrix24
