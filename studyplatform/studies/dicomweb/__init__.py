"""DICOMweb: cases from a hospital's archive (QIDO-RS, WADO-RS) and pushes by STOW-RS.

- ``multipart``: the ``multipart/related`` bodies that WADO-RS answers and STOW-RS receives;
- ``archive``: a client of one archive (search, retrieve one instance at a time);
- ``imports``: the use case importing an archive's studies as cases (one case per study);
- ``stow``: the STOW-RS endpoint for sites.
"""
