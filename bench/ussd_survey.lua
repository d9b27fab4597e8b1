-- wrk script: USSD phones that each complete KEN-2024 surveys, as bench_ussd.py's Python driver does, driven by wrk.
--
-- Why: the Python driver spends about as much CPU per request as the bare-Flask ceiling itself, on the same two
-- cores, so its figures understate what the server does. wrk costs a fraction of that. wrk gives a script no
-- connection of its own, only a thread, so bench_ussd.py runs one connection per thread (-t N -c N): each thread is
-- one phone lane, and its session's hops go out one after another.
--
-- Arguments (after --): first_phone lanes phones_per_lane questions mode
--   mode "survey": check each screen (CON for the 12 first hops, END for the submit) and count completed surveys;
--   mode "ceiling": the same 13 posts, whatever the answer (the bare app always answers the same CON screen).
-- done() prints one line: "lanes: completed=<surveys> bad=<unexpected screens> ..." with the bounds on what the
-- database must hold for the lanes wrk cut off mid-survey (see done()).

local threads = {}

function setup(thread)
  thread:set("lane", #threads)
  table.insert(threads, thread)
end

function init(args)
  first_phone = tonumber(args[1])
  lanes = tonumber(args[2])
  phones_per_lane = tonumber(args[3])
  questions = tonumber(args[4])
  mode = args[5]
  hops_per_survey = questions + 3
  -- Lanes that start at once stay in lockstep (bench/README.md): all dial, then all open the survey, and so on.
  -- Lane n first dials n mod 13 times and leaves each of those sessions at the menu, so its survey's hops fall
  -- out of step with its neighbours'. (wrk's delay() would stagger the start, but wrk counts the delay in the
  -- latency of every request after it.)
  menu_dials = lane % hops_per_survey
  survey = 0
  hop = 0
  completed = 0
  bad = 0
  headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
end

local function body(session, phone, text)
  return "sessionId=ATUid_wrk_" .. mode .. "_" .. lane .. "_" .. session
    .. "&serviceCode=%2A384%2A123%23&phoneNumber=%2B" .. string.format("%d", phone)
    .. "&networkCode=63902&text=" .. text
end

function request()
  if menu_dials > 0 then
    return wrk.format("POST", nil, headers, body("menu" .. menu_dials, first_phone + lane, ""))
  end
  local phone = first_phone + lane + lanes * (survey % phones_per_lane)
  return wrk.format("POST", nil, headers, body(survey, phone, string.rep("1%2A", hop):sub(1, -4)))
end

function response(status, _, text)
  if menu_dials > 0 then
    if mode == "survey" and (status ~= 200 or text:sub(1, 4) ~= "CON ") then
      bad = bad + 1
    end
    menu_dials = menu_dials - 1
    return
  end
  local last = hop == hops_per_survey - 1
  if mode == "survey" then
    local expected = last and "END " or "CON "
    if status ~= 200 or text:sub(1, 4) ~= expected then
      bad = bad + 1
    elseif last then
      completed = completed + 1
    end
  end
  if last then
    hop = 0
    survey = survey + 1
  else
    hop = hop + 1
  end
end

function done()
  -- A lane's `hop` is the hop it sent last and had no answer to when wrk stopped: the server may or may not have
  -- applied it. A lane past its first answer (hop >= 3) must have a draft; one whose first answer or submission was
  -- cut off may (hop 2) or may have saved its survey (hop 12).
  local completed_all, bad_all, drafts_min, drafts_max, submits_cut = 0, 0, 0, 0, 0
  for _, thread in ipairs(threads) do
    local hop = thread:get("hop")
    completed_all = completed_all + thread:get("completed")
    bad_all = bad_all + thread:get("bad")
    if hop >= 3 and hop <= 11 then drafts_min = drafts_min + 1 end
    if hop >= 2 then drafts_max = drafts_max + 1 end
    if hop == 12 then submits_cut = submits_cut + 1 end
  end
  io.write(string.format("lanes: completed=%d bad=%d drafts_min=%d drafts_max=%d submits_cut=%d\n",
    completed_all, bad_all, drafts_min, drafts_max, submits_cut))
end
