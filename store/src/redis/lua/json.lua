-- poolgate: order-preserving JSON object splicing. Values are kept as raw JSON text, so arrays stay
-- arrays ("[]" never becomes "{}"), numbers keep their spelling and unknown fields survive; cjson's
-- decode/encode round trip does none of that.
local function ws(s, i) return string.find(s, '[^ \t\r\n]', i) end

local function str_end(s, i)
  local j = i + 1
  while true do
    local k = string.find(s, '["\\]', j)
    if not k then error('unterminated string') end
    if string.byte(s, k) == 34 then return k + 1 end
    j = k + 2
  end
end

local function value_end(s, i)
  local c = string.byte(s, i)
  if c == nil then error('value expected') end
  if c == 34 then return str_end(s, i) end
  if c == 123 or c == 91 then
    local depth, j = 0, i
    while true do
      local k = string.find(s, '[%[%]{}"]', j)
      if not k then error('unbalanced brackets') end
      local b = string.byte(s, k)
      if b == 34 then
        j = str_end(s, k)
      else
        if b == 123 or b == 91 then depth = depth + 1 else depth = depth - 1 end
        j = k + 1
        if depth == 0 then return j end
      end
    end
  end
  local k = string.find(s, '[,}%] \t\r\n]', i)
  if k == i then error('value expected') end
  return k or (#s + 1)
end

-- Splits a JSON object into ordered raw keys (quoted) and raw values.
local function parse_obj(s)
  local keys, vals = {}, {}
  local i = ws(s, 1)
  if not i or string.byte(s, i) ~= 123 then error('not a JSON object') end
  i = ws(s, i + 1)
  if i and string.byte(s, i) == 125 then return keys, vals end
  while true do
    if not i or string.byte(s, i) ~= 34 then error('object key expected') end
    local ke = str_end(s, i)
    keys[#keys + 1] = string.sub(s, i, ke - 1)
    i = ws(s, ke)
    if not i or string.byte(s, i) ~= 58 then error('colon expected') end
    i = ws(s, i + 1)
    if not i then error('value expected') end
    local ve = value_end(s, i)
    vals[#vals + 1] = string.sub(s, i, ve - 1)
    i = ws(s, ve)
    local b = i and string.byte(s, i)
    if b == 125 then break end
    if b ~= 44 then error('comma or } expected') end
    i = ws(s, i + 1)
  end
  if ws(s, i + 1) then error('trailing characters') end
  return keys, vals
end

local function find(keys, k)
  for i = 1, #keys do if keys[i] == k then return i end end
  return nil
end

local function put(keys, vals, k, v)
  local i = find(keys, k)
  if i then vals[i] = v else keys[#keys + 1] = k; vals[#vals + 1] = v end
end

local function remove(keys, vals, k)
  local i = find(keys, k)
  if i then table.remove(keys, i); table.remove(vals, i) end
end

local function build(keys, vals)
  local parts = {}
  for i = 1, #keys do parts[i] = keys[i] .. ':' .. vals[i] end
  return '{' .. table.concat(parts, ',') .. '}'
end

-- Applies account ops {unset={k}, set={{k,v}}, incr={{k,n}}, threshold=n|nil} to raw JSON.
local function apply_ops(raw, ops)
  -- Full validation first (cjson only reads here; nothing is re-encoded by it), so malformed
  -- stored data is reported and left alone rather than spliced.
  local ok, err = pcall(cjson.decode, raw)
  if not ok then error('invalid JSON: ' .. tostring(err)) end
  local keys, vals = parse_obj(raw)
  for _, k in ipairs(ops.unset) do remove(keys, vals, k) end
  for _, kv in ipairs(ops.set) do put(keys, vals, kv[1], kv[2]) end
  for _, kv in ipairs(ops.incr) do
    local i = find(keys, kv[1])
    local n = (i and tonumber(vals[i]) or 0) + kv[2]
    put(keys, vals, kv[1], string.format('%d', math.floor(n)))
  end
  if ops.threshold then
    local i = find(keys, '"errorCount"')
    if (i and tonumber(vals[i]) or 0) >= ops.threshold then put(keys, vals, '"isHealthy"', 'false') end
  end
  return build(keys, vals)
end

-- The refresh token of a token JSON, in either spelling (read only: nothing is re-encoded).
local function refresh_of(raw)
  if not raw then return nil end
  local ok, t = pcall(cjson.decode, raw)
  if not ok or type(t) ~= 'table' then return nil end
  local r = t.refreshToken
  if type(r) ~= 'string' then r = t.refresh_token end
  if type(r) ~= 'string' then return nil end
  return r
end
