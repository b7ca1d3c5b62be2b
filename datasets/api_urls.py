from django.urls import path

from datasets import api

app_name = "datasets-api"

urlpatterns = [
    path("datasets/", api.DatasetList.as_view(), name="dataset-list"),
    path("datasets/uploads/", api.UploadList.as_view(), name="upload-list"),
    path("datasets/uploads/<uuid:pk>/", api.UploadDetail.as_view(), name="upload-detail"),
    path("datasets/uploads/<uuid:pk>/chunks/", api.UploadChunk.as_view(), name="upload-chunks"),
    path("datasets/uploads/<uuid:pk>/finish/", api.UploadFinish.as_view(), name="upload-finish"),
    path("datasets/<uuid:pk>/", api.DatasetDetail.as_view(), name="dataset-detail"),
    path("datasets/<uuid:pk>/rows/", api.DatasetRows.as_view(), name="dataset-rows"),
    path("datasets/<uuid:pk>/view/", api.DatasetView.as_view(), name="dataset-view"),
]
