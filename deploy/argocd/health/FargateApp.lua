-- Argo CD health check for fargate.operator.dev/FargateApp (all versions).
-- Install: deploy/argocd/resource-customizations.yaml (generated from this file).
-- Argo CD runs it with gopher-lua (Lua 5.1) and the live object as the global `obj`;
-- hack/test-argocd-health.sh runs it under lua5.4 and lua5.1 against deploy/argocd/testdata/FargateApp/.
--
--   spec.policy.paused: true                           -> Suspended
--   no status, or status.observedGeneration < metadata.generation -> Progressing (waiting for the controller)
--   condition Degraded=True                            -> Degraded (its message)
--   condition Ready=True                               -> Healthy
--   anything else                                      -> Progressing (the Ready condition's message)
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

local spec = obj.spec or {}
local status = obj.status
local generation = obj.metadata.generation

if spec.policy ~= nil and spec.policy.paused == true then
  hs.status = "Suspended"
  hs.message = "Paused: spec.policy.paused is true, the controller makes no AWS writes"
  return hs
end

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

local ready = condition(status, "Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready, "Ready")
  return hs
end

hs.status = "Progressing"
hs.message = describe(ready, "Waiting for the Ready condition")
return hs
