// loopback.js: a `node -r` preload for the local emulators (kinesalite, kinesis-local, dynalite).
//
// Usage: node -r ./loopback.js node_modules/kinesalite/cli.js --port 4567
//
// It does two things and nothing else:
//
// 1. Every net.Server (and so every http/https/tls server) listens on 127.0.0.1 only, whatever
//    host the program asked for. kinesalite and kinesis-local have no host option and would
//    otherwise listen on every interface. Unix socket paths and inherited handles are left alone.
//
// 2. A client that disconnects in the middle of a request (a cancelled context, a killed test)
//    must not take the server down. kinesalite (index.js) and dynalite (index.js) both do
//
//        req.on('error', function (err) { throw err })
//
//    and Node's HTTP server destroys an incomplete request with
//    `Error: aborted` (code ECONNRESET) when its socket closes before the body is complete, so the
//    listener throws that error out of the event loop and the process exits. We let the listeners
//    run as usual and catch exactly that error when a listener rethrows it: one line to stderr,
//    the server keeps running. Any other error, or the same error thrown from anywhere else,
//    propagates unchanged.
'use strict'

const net = require('net')
const http = require('http')

const HOST = '127.0.0.1'

// ---- 1. bind to loopback -------------------------------------------------------------------

const originalListen = net.Server.prototype.listen

function isHandle(x) {
  return x !== null && typeof x === 'object' &&
    (x._handle !== undefined || x.handle !== undefined || x.fd !== undefined)
}

net.Server.prototype.listen = function listen(...args) {
  const cb = typeof args[args.length - 1] === 'function' ? args.pop() : undefined
  const first = args[0]
  let opts

  if (first !== null && typeof first === 'object') {
    // listen(options[, cb]) or listen(handle[, backlog][, cb])
    if (isHandle(first) || first.path != null) return originalListen.apply(this, arguments)
    opts = Object.assign({}, first, { host: HOST })
    delete opts.ipv6Only
  } else if (typeof first === 'string' && !/^\d+$/.test(first)) {
    // listen(path[, backlog][, cb]): a unix socket, not a TCP port
    return originalListen.apply(this, arguments)
  } else {
    // listen([port[, host[, backlog]]][, cb])
    opts = { port: first == null ? 0 : Number(first), host: HOST }
    if (typeof args[1] === 'number') opts.backlog = args[1]
    else if (typeof args[2] === 'number') opts.backlog = args[2]
  }
  return cb === undefined ? originalListen.call(this, opts) : originalListen.call(this, opts, cb)
}

// ---- 2. survive clients that disconnect mid-request ----------------------------------------

// The error Node's HTTP server gives an incoming request whose connection closed before the
// request was complete (lib/_http_server.js abortIncoming: connResetException('aborted')).
function isClientAbort(msg, err) {
  return err instanceof Error && err.code === 'ECONNRESET' && err.message === 'aborted' &&
    msg.complete === false
}

const IncomingMessage = http.IncomingMessage
const originalEmit = IncomingMessage.prototype.emit

IncomingMessage.prototype.emit = function emit(event, err) {
  if (event !== 'error' || !isClientAbort(this, err)) return originalEmit.apply(this, arguments)
  try {
    return originalEmit.apply(this, arguments)
  } catch (thrown) {
    if (thrown !== err) throw thrown
    const target = (this.headers && this.headers['x-amz-target']) || '-'
    process.stderr.write(
      `[loopback.js] ${new Date().toISOString()} client disconnected mid-request ` +
      `(${this.method} ${this.url} ${target}): ${err.code} ${err.message}; ` +
      'request dropped, server keeps running\n')
    return true
  }
}
