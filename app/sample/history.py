"""The plant's release records from before Lineproof (its MES change log), imported as dated history.

weld-defect v1 rolled out plant by plant (P1 in March, P2 in June, P3 in July after a pilot); the seam camera went
into shadow on P1 in July; v2 was built in September and waits as a candidate. The quarterly review's time to
production and approval wait per tier read these dates.
"""

RELEASE_HISTORY = """model,version,site,event,at,by,note
weld-defect,v1,,built,2026-02-02T09:00:00,qa-eng,trained on the 2025 pull
weld-defect,v1,P1,approval_requested,2026-02-16T10:00:00,qa-eng,CR-2026-014
weld-defect,v1,P1,approved,2026-03-06T15:30:00,plant-quality,CR-2026-014 signed on paper
weld-defect,v1,P1,production,2026-03-09T06:00:00,qa-eng,
weld-defect,v1,P2,pilot,2026-04-13T06:00:00,qa-eng,
weld-defect,v1,P2,approval_requested,2026-05-25T10:00:00,qa-eng,CR-2026-051
weld-defect,v1,P2,approved,2026-06-05T11:00:00,plant-quality,
weld-defect,v1,P2,production,2026-06-08T06:00:00,qa-eng,
weld-defect,v1,P3,pilot,2026-06-01T06:00:00,qa-eng,
weld-defect,v1,P3,approval_requested,2026-07-06T10:00:00,qa-eng,CR-2026-077
weld-defect,v1,P3,approved,2026-07-14T16:00:00,plant-quality,
weld-defect,v1,P3,production,2026-07-20T06:00:00,qa-eng,
seam-vision,v1,,built,2026-07-06T09:00:00,vision-team,
seam-vision,v1,P1,approval_requested,2026-07-13T10:00:00,vision-team,CR-2026-080
seam-vision,v1,P1,approved,2026-07-15T09:00:00,plant-quality,
seam-vision,v1,P1,shadow,2026-07-20T06:00:00,vision-team,camera pilot
weld-defect,v2,,built,2026-09-14T09:00:00,ds-team,trained on the 2026 pull
weld-defect,v2,P1,candidate,2026-09-21T09:00:00,ds-team,
weld-defect,v2,P2,candidate,2026-09-21T09:00:00,ds-team,
weld-defect,v2,P3,candidate,2026-09-21T09:00:00,ds-team,
"""
