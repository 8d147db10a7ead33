/**
 * The consumer-group-safe trim, run by EVALSHA on the node that owns the
 * streams. Computing the floor and trimming in one script is what makes it
 * safe: Redis runs a script atomically, so no XGROUP CREATE / SETID, XREADGROUP
 * or XACK can land between reading a stream's groups and its XTRIM.
 *
 * One script trims a batch of streams under one policy (on a Cluster, streams
 * of one slot), each as below: a call per stream cost Redis about as much as
 * the script's own work, and node the same again in commands and replies.
 *
 * KEYS     the streams
 * ARGV[1]  policy MINID ('' = none): entries older than it may go
 * ARGV[2]  policy MAXLEN ('' = none): converted here into the id of the first
 *          entry to keep, the N-th from the end (the greater of the two wins),
 *          read from the nearer end: O(min(N, length - N)) entries
 * ARGV[3]  '1' = approximate (`XTRIM … MINID ~ id LIMIT 0`)
 * ARGV[4]  '1' = force: trim to the policy, ignore the groups
 * ARGV[5]  '1' = dry run: compute everything, trim nothing
 * ARGV[6]  '1' = counts only for a stream trimmed plainly (not held back by
 *          the floor, not forced past it): { length before, length after,
 *          dry-run count (12 below, or -1 when unknown) }, as a run that
 *          reports only the streams worth a look needs no more of it
 * ARGV[7]  entries a script may remove before it stops at a stream boundary
 *          ('' = no bound): the replies then stop short of KEYS and the caller
 *          sends the rest again, so a batch of long streams holds the server
 *          no longer than one of them would (XTRIM frees ~9 ns an entry: a
 *          million entries, 9 ms), and other clients are served in between
 *
 * Why LIMIT 0: with `~`, XTRIM stops after 100 × stream-node-max-entries
 * entries by default, so a stream far behind its policy would stay over it
 * after a run; LIMIT 0 lifts that cap (exact trims take no LIMIT at all).
 *
 * maxLen with a floor (the usual run): whether the floor lies among the newest
 * N entries is not counted (Redis 7 counts entries between two ids only by
 * reading them, and a group's lag / entries-read or a stream's entries-added
 * can be set to anything). `XTRIM MINID ~ floor LIMIT length-N` first removes
 * whole nodes from the head while each is all older than the floor and N
 * entries stay: only entries older than both the floor and the cut-off. What is
 * left to decide lies in the first node left, read up to the floor: one node at
 * most (one entry when the cut-off is a node boundary), however long the stream
 * and however far behind it is.
 *
 * Returns one reply per key, in KEYS order (fewer when ARGV[7] stopped it):
 * 'missing' when the key is gone,
 * { 'error', message } when a command on it failed (WRONGTYPE: the key is
 * another type now; the batch's other streams go on), else an array:
 *  1 length before  2 length after  3 cut-off id | nil  4 floor id | nil
 *  5 floor group    6 'pending' | 'undelivered'   7 consumer of the oldest
 *  pending entry    8 its idle ms    9 the id trimmed to | nil
 *  10 1 when the floor held the trim back   11 first id left | nil
 *  12 entries before the cut-off, when the MAXLEN gave it (dry-run count)
 *
 * Ids are compared as decimal strings (length, then bytes): Lua numbers are
 * doubles and a sequence number can exceed 2^53.
 */
export const SAFE_TRIM_LUA = `
local minId, maxLen = ARGV[1], ARGV[2]
local approximate, force, dryRun, countsOnly = ARGV[3] == '1', ARGV[4] == '1', ARGV[5] == '1', ARGV[6] == '1'

-- Both ids canonical (as Redis prints them; ARGV[1] is normalised by the caller): no
-- leading zeros, so a longer part is a larger number and equal lengths compare as bytes.
local find, sub = string.find, string.sub
local function cmp(a, b)
  if a == b then return 0 end
  local ad, bd = find(a, '-', 1, true), find(b, '-', 1, true)
  if ad ~= bd then return ad < bd and -1 or 1 end
  -- Milliseconds of one length: with the sequences of one length too, bytes compare as numbers.
  if #a == #b then return a < b and -1 or 1 end
  local am, bm = sub(a, 1, ad - 1), sub(b, 1, bd - 1)
  if am ~= bm then return am < bm and -1 or 1 end
  return #a < #b and -1 or 1
end
local function incdec(s)
  for i = #s, 1, -1 do
    local d = string.byte(s, i) - 48
    if d < 9 then return string.sub(s, 1, i - 1) .. string.char(49 + d) .. string.rep('0', #s - i) end
  end
  return '1' .. string.rep('0', #s)
end
local MAX_ID = '18446744073709551615-18446744073709551615'
local function nextId(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  if seq == '18446744073709551615' then return incdec(ms) .. '-0' end
  return ms .. '-' .. incdec(seq)
end

-- The k-th entry from one end, read in pages so memory stays at one page:
-- from whichever end is nearer the cut-off, so finding it costs at most the
-- entries XTRIM then removes (and a MAXLEN of 1M reads no million entries).
local function kth(key, command, from, to, k)
  while true do
    local page = redis.call(command, key, from, to, 'COUNT', math.min(k, 500))
    if k <= #page then return page[k][1] end
    k = k - #page
    from = '(' .. page[#page][1]
  end
end

local function lastIdOf(key)
  local e = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)[1]
  return e and e[1] or false
end

local function trimOne(key)
-- XLEN raises WRONGTYPE for a key of another type; 0 may mean the key is gone.
local before = redis.call('XLEN', key)
if before == 0 and redis.call('EXISTS', key) == 0 then return 'missing' end
-- The floor: per group, its oldest pending entry and the first entry after its
-- last-delivered-id (none when it has read up to the last entry); the smallest wins, the
-- first group on a tie. First every group's oldest pending entry (XPENDING), then, in group
-- order, the first undelivered entry only of a group whose last-delivered-id is below every
-- id found so far: the entry after it is greater still, so it can neither hold the floor nor
-- tie with it otherwise (a group that has read everything costs no call).
local floor, floorGroup, floorReason, floorConsumer, floorIdle = false, false, false, false, false
local groups, low = {}, false
for i, g in ipairs(redis.call('XINFO', 'GROUPS', key)) do
  local name, pending, delivered
  if g[1] == 'name' and g[5] == 'pending' and g[7] == 'last-delivered-id' then
    -- Redis 7's order (name, consumers, pending, last-delivered-id, entries-read, lag).
    name, pending, delivered = g[2], g[6], g[8]
  else
    for j = 1, #g, 2 do
      local field = g[j]
      if field == 'name' then name = g[j + 1]
      elseif field == 'pending' then pending = g[j + 1]
      elseif field == 'last-delivered-id' then delivered = g[j + 1] end
    end
  end
  local oldest = pending > 0 and redis.call('XPENDING', key, name, '-', '+', 1)[1] or false
  if oldest and (not low or cmp(oldest[1], low) < 0) then low = oldest[1] end
  groups[i] = { name, delivered, oldest }
end
for _, g in ipairs(groups) do
  local name, delivered, oldest = g[1], g[2], g[3]
  local id, reason, consumer, idle = false, false, false, false
  if oldest then id, reason, consumer, idle = oldest[1], 'pending', oldest[2], oldest[3] end
  if (not low or cmp(delivered, low) < 0) and delivered ~= MAX_ID then
    local nxt = redis.call('XRANGE', key, '(' .. delivered, '+', 'COUNT', 1)[1]
    if nxt and (not id or cmp(nxt[1], id) < 0) then
      id, reason, consumer, idle = nxt[1], 'undelivered', false, false
    end
  end
  if id and (not floor or cmp(id, floor) < 0) then
    floor, floorGroup, floorReason, floorConsumer, floorIdle = id, name, reason, consumer, idle
    if not low or cmp(id, low) < 0 then low = id end
  end
end

local n = tonumber(maxLen)
local cutoff, target, heldBack, beforeCutoff, first = false, false, 0, false, nil
local after = before
local byLength = n and minId == '' and not dryRun and before > n
if byLength and (force or not floor
    or (n == 0 and not redis.call('XRANGE', key, floor, '+', 'COUNT', 1)[1])) then
  -- No group needs anything (or --force, or maxLen 0 with nothing from the floor on): a
  -- bare XTRIM MAXLEN, and the cut-off read afterwards from the head, where it now is (in
  -- the first node with ~), instead of walking n entries to find it first.
  if n == 0 then cutoff = nextId(lastIdOf(key)) end
  if approximate then
    after = before - redis.call('XTRIM', key, 'MAXLEN', '~', n, 'LIMIT', 0)
  else
    after = before - redis.call('XTRIM', key, 'MAXLEN', n)
  end
  -- No floor: plainly trimmed, and a run that asks for counts only needs no cut-off id.
  if countsOnly and not floor then return { before, after, -1 } end
  if n > 0 then
    cutoff = kth(key, 'XRANGE', '-', '+', after - n + 1)
    if after == n then first = cutoff end
  end
  target = cutoff
elseif byLength and n > 0 then
  -- Trimming to min(cut-off, floor) without counting the entries from the floor on: first
  -- XTRIM MINID ~ floor LIMIT (length - n), which removes whole radix-tree nodes from the
  -- head only while both hold: every entry of the node is older than the floor, and at
  -- least n entries stay (it stops before a node that would take it past the limit). So it
  -- removes only entries older than both the floor and the cut-off, and stops at a node
  -- that holds the floor or the cut-off: what is left to decide lies within that first node.
  after = before - redis.call('XTRIM', key, 'MINID', '~', floor, 'LIMIT', before - n)
  if after == n then
    -- n entries left (LIMIT keeps at least n): the cut-off is the first of them and nothing is
    -- older than it, so nothing more goes and the floor holds nothing back (all it protects is
    -- still there). The usual case when the groups are near the end: a run that asks for
    -- counts only is done without reading an entry.
    if countsOnly then return { before, after, -1 } end
    cutoff = redis.call('XRANGE', key, '-', '+', 'COUNT', 1)[1][1]
    target, first = cutoff, cutoff
  else
    -- The cut-off is now the (after - n + 1)-th entry: it is no later than the floor exactly
    -- when the first after - n entries are older than the floor. Read up to the floor only: at
    -- most the first node, however far back the floor is.
    local want = after - n + 1
    local head = redis.call('XRANGE', key, '-', floor, 'COUNT', want)
    local k = #head
    if k == want then
      cutoff = head[k][1]
    elseif k == after - n and (k == 0 or head[k][1] ~= floor) then
      -- The floor is no entry (a pending entry deleted) and the cut-off the first entry after it.
      cutoff = redis.call('XRANGE', key, floor, '+', 'COUNT', 1)[1][1]
    else
      -- More than n entries from the floor on: it holds the trim back.
      heldBack = 1
      if n <= after - n then cutoff = kth(key, 'XREVRANGE', '+', '-', n) else cutoff = kth(key, 'XRANGE', '-', '+', after - n + 1) end
    end
    target = heldBack == 1 and floor or cutoff
    if approximate then
      -- What XTRIM MAXLEN ~ n would also remove: whole nodes while n entries stay (all older than
      -- the floor, as the floor is not held back). Held back, MINID ~ floor was all of it.
      if heldBack == 0 and after > n then
        after = after - redis.call('XTRIM', key, 'MAXLEN', '~', n, 'LIMIT', 0)
      elseif heldBack == 0 then
        first = cutoff
      end
    else
      if k > 0 and cmp(head[1][1], target) < 0 then after = after - redis.call('XTRIM', key, 'MINID', target) end
      if heldBack == 0 then first = cutoff end
    end
  end
else
  if minId ~= '' then cutoff = minId end
  if n and before > n then
    local id
    if n == 0 then
      id = nextId(lastIdOf(key))
    elseif n <= before - n then
      id = kth(key, 'XREVRANGE', '+', '-', n)
    else
      id = kth(key, 'XRANGE', '-', '+', before - n + 1)
    end
    if not cutoff or cmp(id, cutoff) >= 0 then
      cutoff = id
      beforeCutoff = before - n
    end
  end
  target = cutoff
  if target and floor and not force and cmp(floor, target) < 0 then
    target = floor
    heldBack = 1
    beforeCutoff = false
  end
  if target and not dryRun then
    if approximate then
      after = before - redis.call('XTRIM', key, 'MINID', '~', target, 'LIMIT', 0)
    else
      after = before - redis.call('XTRIM', key, 'MINID', target)
    end
  end
end
if first == nil then
  local e = after > 0 and redis.call('XRANGE', key, '-', '+', 'COUNT', 1)[1]
  first = e and e[1] or false
end
if countsOnly and heldBack == 0 and not (force and floor and target and cmp(floor, target) < 0) then
  return { before, after, beforeCutoff or (target and -1 or 0) }
end
return { before, after, cutoff, floor, floorGroup, floorReason, floorConsumer, floorIdle,
  target, heldBack, first, beforeCutoff }
end

local budget, removed = tonumber(ARGV[7]), 0
local replies = {}
for i = 1, #KEYS do
  local ok, reply = pcall(trimOne, KEYS[i])
  if not ok then reply = { 'error', type(reply) == 'table' and reply.err or tostring(reply) } end
  replies[i] = reply
  if budget and type(reply) == 'table' and type(reply[1]) == 'number' then
    removed = removed + reply[1] - reply[2]
    if removed >= budget then break end
  end
end
return replies
`;
