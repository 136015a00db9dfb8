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

/* The longest X-Request-Id taken from a client; longer ones are replaced
 * by a generated id. */
#define SRV_REQUEST_ID_MAX 64

/* The request path kept for routing and the access log, with its NUL
 * (a longer one is cut, and matches no route). */
#define SRV_PATH_LEN 256

/* Upload parts other than the weights: config.json, and the text files
 * (vocab.txt, tokenizer.json, calibration text). */
#define SRV_UPLOAD_CONFIG_MAX SRV_MIB
#define SRV_UPLOAD_TEXT_MAX (64 * SRV_MIB)

#endif
