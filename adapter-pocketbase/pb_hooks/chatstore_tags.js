// A module of pb_hooks/chatstore.pb.js (handlers `require` it, since each runs in its own VM).
// A chat's `tags` is the JSON text PocketBase writes for a relation: an id of letters, digits,
// `_`, `-` and `.` appears in it as `"id"`, never escaped. For such an id,
// carriesText(param, id) is " AND instr(c.tags, <param>) > 0" (the param bound to quoted(id)):
// a cheap test that only lets through chats whose text holds it, before the exact JSON test,
// which parses `tags`. Any other id gets no text test ("").
module.exports.carriesText = (param, id) =>
  /^[A-Za-z0-9_.-]+$/.test(id) ? " AND instr(c.tags, " + param + ") > 0" : "";

module.exports.quoted = (id) => '"' + id + '"';
