-- Argo CD health check for fargate.operator.dev/HotPoolClaim (all versions).
-- Install: deploy/argocd/resource-customizations.yaml (generated from this file).
-- Argo CD runs it with gopher-lua (Lua 5.1) and the live object as the global `obj`;
-- hack/test-argocd-health.sh runs it under lua5.4 and lua5.1 against deploy/argocd/testdata/HotPoolClaim/.
-- Claims have no spec.policy, so never Suspended.
--
--   no status, or status.observedGeneration < metadata.generation -> Progressing (waiting for the controller)
--   condition Degraded=True              -> Degraded (its message)
--   status.phase Bound                   -> Healthy
--   status.phase Pending                 -> Progressing (the Ready condition's message)
--   status.phase Expired | Failed        -> Degraded: the claim holds no worker any more and will not
--                                           get one by itself (renew spec.renewedAt in time, or delete
--                                           and recreate the claim)
--   no phase yet, or a phase this script does not know -> Progressing
local hs = {}

local function condition(status, ctype)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == ctype then
      return c
    end
  end
  return nil
end

-- A condition's message, else its reason, else the fallback.
local function describe(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  if c ~= nil and c.reason ~= nil and c.reason ~= "" then
    return c.reason
  end
  return fallback
end

local status = obj.status
local generation = obj.metadata.generation

if status == nil or status.observedGeneration == nil or
    (generation ~= nil and status.observedGeneration < generation) then
  hs.status = "Progressing"
  if generation ~= nil then
    hs.message = string.format("Waiting for the controller to observe generation %d", generation)
  else
    hs.message = "Waiting for the controller"
  end
  return hs
end

local degraded = condition(status, "Degraded")
if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(degraded, "Degraded")
  return hs
end

local phase = status.phase
local ready = condition(status, "Ready")

if phase == "Bound" then
  hs.status = "Healthy"
  local where = ""
  if status.ip ~= nil and status.port ~= nil then
    where = string.format(" at %s:%d", status.ip, status.port)
  end
  hs.message = "Bound to worker " .. tostring(status.worker or "?") .. where
elseif phase == "Pending" then
  hs.status = "Progressing"
  hs.message = describe(ready, "Pending: waiting for an Available worker")
elseif phase == "Expired" then
  hs.status = "Degraded"
  local fallback = "Expired: the lease ran out; renew spec.renewedAt in time or recreate the claim"
  if status.expiresAt ~= nil then
    fallback = "Expired at " .. status.expiresAt .. ": the lease ran out; renew spec.renewedAt in time or recreate the claim"
  end
  hs.message = describe(ready, fallback)
elseif phase == "Failed" then
  hs.status = "Degraded"
  local fallback = "Failed"
  if status.lastError ~= nil and status.lastError.message ~= nil then
    fallback = "Failed: " .. status.lastError.message
  end
  hs.message = describe(ready, fallback)
elseif phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the controller to set status.phase"
else
  hs.status = "Progressing"
  hs.message = "Unrecognised phase " .. tostring(phase) .. " (a newer controller than this health check?)"
end
return hs
