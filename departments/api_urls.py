from common.api import api_path

from . import apis

urlpatterns = [
    *api_path("departments", apis.DepartmentListApi.as_view(), "api-departments"),
    *api_path("departments/<int:pk>", apis.DepartmentDetailApi.as_view(), "api-department"),
]
