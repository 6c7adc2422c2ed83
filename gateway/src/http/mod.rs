//! The HTTP data plane: one router for HTTP/1, HTTP/2 and HTTP/3 requests, the upstream
//! client pool, standard headers, CORS, gRPC-web and the access log.

pub mod router;
