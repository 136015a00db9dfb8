/* srv_limits.h - the server's fixed limits, each named once.  (The
 * configurable ones are config/config.h's settings.) */
#ifndef BCT_SRV_LIMITS_H
#define BCT_SRV_LIMITS_H

#define SRV_MIB (1024LL * 1024LL)

/* A body refused from its headers is still read and dropped (so that
 * keep-alive connections survive the answer) up to twice its route's
 * limit plus this slack; past it the connection is closed. */
#define SRV_DROP_SLACK SRV_MIB

/* An admin upload without a valid token is answered without reading it
 * and the connection closed, except a body of at most this many bytes
 * (Content-Length), which is read and dropped first: closing with unread
 * bytes resets the connection, and a proxy still streaming the body to
 * us (nginx) then answers 502 instead of passing the 401 on. */
#define SRV_UNAUTH_DRAIN (8 * SRV_MIB)

/* A request body must be complete body_timeout_s after its headers, plus
 * one second per this many bytes it announces (Content-Length; a chunked
 * body: its route's limit), so that a large admin upload on a slow link
 * gets time in proportion (2 GiB: 34 min) while a /classify body (at most
 * max_body_bytes, 1 MiB) gets body_timeout_s + 1 s.  1 MiB/s is 8 Mbit/s,
 * a slow office uplink; slower clients raise body_timeout_s. */
#define SRV_BODY_MIN_RATE SRV_MIB

/* The largest calibration part of an admin upload (text lines; the job
 * reads calib_n of them). */
#define SRV_CALIB_MAX_BYTES (64 * SRV_MIB)

/* The longest X-Request-Id taken from a client; longer ones are replaced
 * by a generated id. */
#define SRV_REQUEST_ID_MAX 64

#endif
