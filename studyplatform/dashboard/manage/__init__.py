"""The coordinators' pages of a study: readers and enrolment, sites, site tokens."""
