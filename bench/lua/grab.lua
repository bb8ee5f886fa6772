-- The classic red-packet grab: shares are pre-split into a list when the packet is sent;
-- a grab pops one and records the claimer, atomically (Redis runs a script alone).
-- KEYS[1] = <packet>:shares (list of amounts), KEYS[2] = <packet>:claimed (hash user -> amount)
-- ARGV[1] = the claimer. Returns the amount, -1 if already claimed, -2 if empty.
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then
  return -1
end
local share = redis.call('LPOP', KEYS[1])
if not share then
  return -2
end
redis.call('HSET', KEYS[2], ARGV[1], share)
return tonumber(share)
