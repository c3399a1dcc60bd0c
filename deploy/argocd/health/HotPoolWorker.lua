-- Argo CD health check for fargate.operator.dev/HotPoolWorker (all versions).
-- Install: deploy/argocd/resource-customizations.yaml (generated from this file).
-- Argo CD runs it with gopher-lua (Lua 5.1) and the live object as the global `obj`;
-- hack/test-argocd-health.sh runs it under lua5.4 and lua5.1 against deploy/argocd/testdata/HotPoolWorker/.
-- Workers have no spec.policy (the controller owns them), so never Suspended.
--
--   no status, or status.observedGeneration < metadata.generation -> Progressing (waiting for the controller)
--   condition Degraded=True                  -> Degraded (its message)
--   status.phase Available | Claimed         -> Healthy
--   status.phase Starting | Stopping         -> Progressing
--   status.phase Failed                      -> Degraded (Degraded/Ready message, else lastError)
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

if phase == "Available" then
  hs.status = "Healthy"
  if status.ip ~= nil and status.port ~= nil then
    hs.message = string.format("Available at %s:%d", status.ip, status.port)
  else
    hs.message = "Available"
  end
elseif phase == "Claimed" then
  hs.status = "Healthy"
  if status.claim ~= nil and status.claim.name ~= nil then
    hs.message = "Claimed by " .. status.claim.name
  else
    hs.message = "Claimed"
  end
elseif phase == "Starting" then
  hs.status = "Progressing"
  hs.message = describe(ready, "Starting: waiting for the ECS task to run with an IP")
elseif phase == "Stopping" then
  hs.status = "Progressing"
  hs.message = describe(ready, "Stopping: the ECS task is being stopped")
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
