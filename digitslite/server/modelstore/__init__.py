"""The model store on the server: the stores' listing, importing an entry and convolutionalizing a
classifier as pretrained jobs, publishing a model job into a store folder, and the embedded store
served as a static tree at /store/ (so this server is itself a store for others).

Modules: plans (the two pretrained-job requests), publishing, routes (the JSON API), tree (/store/).
"""
