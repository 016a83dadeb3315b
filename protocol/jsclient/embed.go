package jsclient

import _ "embed"

// Source is the text of client.js.
//
//go:embed client.js
var Source []byte

// ContentType is the media type to serve Source with.
const ContentType = "text/javascript; charset=utf-8"
