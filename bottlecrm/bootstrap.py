"""Run inside BottleCRM (`django-admin shell < bootstrap.py`): an org, an ADMIN, two USERs, a token.

Prints one JSON line: the raw token and the profiles (id, email, role).
"""

import json
import os

from common.models import Org, PersonalAccessToken, Profile, User

org = Org.objects.create(name=os.environ.get("BOTTLECRM_ORG", "Partner org"))
people = [
    ("admin@partner.test", "ADMIN"),
    ("ann@partner.test", "USER"),
    ("bob@partner.test", "USER"),
]
profiles = []
for email, role in people:
    user = User.objects.create_user(email=email, password="not-used-by-dealsync")
    profile = Profile.objects.create(
        user=user, org=org, role=role, is_organization_admin=role == "ADMIN", has_sales_access=True
    )
    profiles.append({"id": str(profile.id), "email": email, "role": role})
admin = Profile.objects.get(user__email="admin@partner.test", org=org)
raw, _pat = PersonalAccessToken.generate(admin, "dealsync")
print("DEALSYNC_BOOTSTRAP " + json.dumps({"token": raw, "org": str(org.id), "profiles": profiles}))
