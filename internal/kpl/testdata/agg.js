// agg.js: the interop half of internal/kpl's tests, run by interop_test.go with node.
//
//   node agg.js MODULE_DIR aggregate    < {"records":[{"partitionKey","explicitHashKey"?,"data"}]}
//   node agg.js MODULE_DIR deaggregate  < {"records":[{"partitionKey","explicitHashKey"?,"data"}]}
//
// MODULE_DIR is the installed aws-kinesis-agg package; data is base64 both ways. aggregate packs
// the user records with the module's aggregate() and prints the Kinesis records it emits;
// deaggregate reads Kinesis records with the module's deaggregateSync() (checksums checked) and
// prints the user records it finds. Output is {"records":[...]} on stdout; any error exits 1.
'use strict';

const path = require('path');

const agg = require(process.argv[2]);
// The module's own protobuf type, only to see which user records carry an explicit hash key
// index: deaggregateSync reports explicit_hash_key_table[0] for those that carry none (protobufjs
// puts the field's default, 0, on the decoded object's prototype).
const { AggregatedRecord, magic } = require(path.join(process.argv[2], 'lib', 'common.js'));
const mode = process.argv[3];

function fail(err) {
  process.stderr.write(`agg.js: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
}

function readStdin() {
  return new Promise((resolve, reject) => {
    const chunks = [];
    process.stdin.on('data', (c) => chunks.push(c));
    process.stdin.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    process.stdin.on('error', reject);
  });
}

function aggregate(records) {
  return new Promise((resolve, reject) => {
    const out = [];
    const input = records.map((r) => {
      const rec = { partitionKey: r.partitionKey, data: Buffer.from(r.data, 'base64') };
      if (r.explicitHashKey) rec.explicitHashKey = r.explicitHashKey;
      return rec;
    });
    agg.aggregate(input, (encoded, done) => {
      // The module names the field ExplicitHashKey on encoded records (README: explicitHashKey).
      out.push({
        partitionKey: encoded.partitionKey,
        explicitHashKey: encoded.ExplicitHashKey || encoded.explicitHashKey || '',
        data: encoded.data.toString('base64'),
      });
      done();
    }, () => resolve(out), (err) => reject(err));
  });
}

// hasEHK lists, for an aggregated record, whether each user record has an explicit hash key.
function hasEHK(buf) {
  if (buf.length <= 20 || !buf.subarray(0, 4).equals(magic)) return [];
  const msg = AggregatedRecord.decode(buf.subarray(4, buf.length - 16));
  return msg.records.map((r) => Object.prototype.hasOwnProperty.call(r, 'explicit_hash_key_index'));
}

function deaggregate(records) {
  const out = [];
  records.forEach((r, i) => {
    const kinesisRecord = { partitionKey: r.partitionKey, data: r.data, sequenceNumber: String(i) };
    if (r.explicitHashKey) kinesisRecord.explicitPartitionKey = r.explicitHashKey;
    const has = hasEHK(Buffer.from(r.data, 'base64'));
    agg.deaggregateSync(kinesisRecord, true, (err, userRecords) => {
      if (err) fail(err);
      userRecords.forEach((u, j) => {
        const aggregated = u.subSequenceNumber !== undefined;
        const set = aggregated ? has[j] : u.explicitPartitionKey !== undefined;
        out.push({
          kinesisRecord: i,
          aggregated,
          subSequenceNumber: aggregated ? u.subSequenceNumber : -1,
          partitionKey: u.partitionKey,
          explicitHashKey: set ? String(u.explicitPartitionKey) : '',
          data: u.data,
        });
      });
    });
  });
  return out;
}

readStdin().then(async (text) => {
  const { records } = JSON.parse(text);
  let out;
  if (mode === 'aggregate') out = await aggregate(records);
  else if (mode === 'deaggregate') out = deaggregate(records);
  else throw new Error(`unknown mode ${mode}`);
  process.stdout.write(JSON.stringify({ records: out }) + '\n');
}).catch(fail);
