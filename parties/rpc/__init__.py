"""What every party speaks on the wire: mutual TLS, the service boundary (policy-free: status
mapping, metrics, audit), message framing, and the codecs between protobuf messages and the
library's types."""
